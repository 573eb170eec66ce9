-- 0001_ig_foundation: the reference ingestion gate's own state, beside (never inside) the
-- runtime's tables: every name starts with `ig_`, and these migrations are recorded in their own
-- table (`ig_schema_migrations`), so the gate can share a database with worldstream or have one
-- to itself.
--
-- Model. An admission is keyed by its dedupe key, sha256("{platform_run_id}:{event_class}:
-- {event_id}"). Admitting is `insert ... on conflict (dedupe_key) do nothing`: whichever
-- transaction inserts the key first admits the event, and every later attempt reads the stored
-- payload hash back to answer DUPLICATE (same hash) or QUARANTINE PAYLOAD_HASH_MISMATCH (another
-- hash). That is atomic under concurrent pushes of the same event, on one server or many.
--
--   * ig_admissions: one row per admitted event with the envelope as received (JSON text, so the
--     admitted log streams out without re-encoding). `admitted_seq` is the admission order; a
--     receipt is rebuilt from the row on lookup, so it is not stored twice. Two indexes only,
--     because every index is paid on every admission: the dedupe key, and the admission order
--     (the admitted log of a run is read in that order, skipping other runs' rows). A lookup by
--     event id probes the dedupe keys the id can have: one per (run seen, class known).
--   * ig_quarantine: one row per quarantined attempt, with the platform's quarantine record.
--   * ig_counters: admitted / duplicate / quarantined per platform run, spread over a few shards
--     so that concurrent transactions rarely wait on one counter row; readers sum the shards.
--
-- DDL is idempotent (IF NOT EXISTS) so a half-applied manual run can be finished by the runner.

create table if not exists ig_admissions (
  admitted_seq bigint generated always as identity primary key,
  dedupe_key text not null unique,
  platform_run_id text not null,
  event_class text not null,
  event_id text not null,
  event_type text not null,
  payload_hash text not null,
  admitted_at_utc text not null,
  envelope text not null
);

create table if not exists ig_quarantine (
  quarantine_seq bigint generated always as identity primary key,
  received_at_utc text not null,
  platform_run_id text not null,
  event_id text,
  event_type text,
  reason_code text not null,
  detail text,
  record text not null
);
create index if not exists ig_quarantine_event_id on ig_quarantine (event_id);

create table if not exists ig_counters (
  platform_run_id text not null,
  shard int not null,
  admitted bigint not null default 0,
  duplicate bigint not null default 0,
  quarantined bigint not null default 0,
  primary key (platform_run_id, shard)
);
