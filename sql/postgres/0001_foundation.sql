-- 0001_foundation: the durable state of the world stream producer.
--
-- Model. The runtime never writes here on its streaming path: it appends records to its local WAL
-- and a drain fiber copies them in batches. Every record therefore carries a `record_id` chosen
-- by the writer, and the drain inserts with `on conflict (record_id) do nothing`, so replaying a
-- WAL segment after a crash is harmless. Three kinds of table follow from that:
--
--   * logs (READY ledger, audit events, receipts, budget ledger, policy snapshots) are
--     append-only: a trigger refuses UPDATE and DELETE, so history is edited only by a migration;
--   * positions (checkpoints) and work items (dead letters, approvals) are keyed rows that move
--     forward: the drain or the API updates them in place;
--   * output leases give each (run, output) one owner at a time across instances: an owner renews
--     before `expires_at`, anyone may take the lease only after it.
--
-- Times the runtime chose (from Effect Clock) are timestamptz columns filled by the writer, never
-- by `now()`, so tests on a TestClock read back what they wrote. Event timestamps from the stream
-- view stay text (`ts_utc`, microsecond ISO) to round-trip byte for byte.
--
-- DDL is idempotent (IF NOT EXISTS / OR REPLACE) so a half-migrated database from a crashed manual
-- run can be finished by the runner.

-- Where each output of a pack has got to: the last event delivered in order.
create table if not exists ws_checkpoints (
  pack_key text not null,
  output_id text not null,
  last_seq bigint not null,
  last_file text,
  last_row_index bigint,
  last_ts_utc text,
  updated_at_utc timestamptz not null,
  primary key (pack_key, output_id)
);

-- One row per decision on a READY message; "already STREAMED?" reads the latest row per message.
create table if not exists ws_ready_ledger (
  record_id text primary key,
  message_id text not null,
  status text not null,
  reason text,
  platform_run_id text,
  scenario_run_id text,
  attempt int not null default 1,
  recorded_at timestamptz not null,
  detail jsonb not null default '{}'
);
create index if not exists ws_ready_ledger_message on ws_ready_ledger (message_id, recorded_at);

-- What happened, for operators: run lifecycle, operator actions, degradations.
create table if not exists ws_audit_events (
  record_id text primary key,
  kind text not null,
  run_key text,
  output_id text,
  at timestamptz not null,
  detail jsonb not null default '{}'
);
create index if not exists ws_audit_events_run on ws_audit_events (run_key, at);

-- Hash-chained, signed receipts: each carries its predecessor's hash. `seq` is Postgres's arrival
-- order, handy for paging; the chain itself is defined by prev_hash → hash.
create table if not exists ws_receipts (
  record_id text primary key,
  seq bigserial unique,
  kind text not null,
  run_key text,
  output_id text,
  body jsonb not null,
  prev_hash text,
  hash text not null,
  signature text,
  at timestamptz not null
);
create index if not exists ws_receipts_run on ws_receipts (run_key, seq);
create index if not exists ws_receipts_hash on ws_receipts (hash);

-- Envelopes the gate never admitted: the full envelope, so a retry resends exactly those bytes.
-- status: OPEN until an operator retries or purges it.
create table if not exists ws_dead_letters (
  record_id text primary key,
  run_key text not null,
  output_id text not null,
  event_id text not null,
  envelope jsonb not null,
  attempts int not null,
  last_status int,
  reason text not null,
  status text not null default 'OPEN',
  at timestamptz not null
);
create index if not exists ws_dead_letters_open on ws_dead_letters (run_key, output_id, at)
  where status = 'OPEN';

-- Budget consumption per principal/run/output and metric (events, bytes): one row per charge,
-- carrying the running total and the cap it was checked against.
create table if not exists ws_budget_ledger (
  record_id text primary key,
  principal text not null,
  run_key text,
  output_id text,
  metric text not null,
  amount bigint not null,
  total bigint not null,
  cap bigint,
  exceeded boolean not null default false,
  at timestamptz not null,
  detail jsonb not null default '{}'
);
create index if not exists ws_budget_ledger_scope on ws_budget_ledger (principal, run_key, output_id, metric, at);

-- The policy inputs and verdict behind each supervisor decision, so a refusal can be explained
-- later even after the policy file changed.
create table if not exists ws_policy_snapshots (
  record_id text primary key,
  run_key text,
  principal text not null,
  capability text not null,
  decision text not null,
  reason text,
  policy_digest text,
  snapshot jsonb not null,
  at timestamptz not null
);
create index if not exists ws_policy_snapshots_run on ws_policy_snapshots (run_key, at);

-- Actions parked by REQUIRE_APPROVAL until an operator decides.
create table if not exists ws_approvals (
  approval_id text primary key,
  capability text not null,
  principal text not null,
  status text not null default 'PENDING' check (status in ('PENDING', 'APPROVED', 'DENIED')),
  request jsonb not null,
  decided_by text,
  decided_at timestamptz,
  created_at timestamptz not null
);
create index if not exists ws_approvals_pending on ws_approvals (created_at) where status = 'PENDING';

-- One streaming owner per (run, output) across instances.
create table if not exists ws_output_leases (
  run_key text not null,
  output_id text not null,
  owner text not null,
  expires_at timestamptz not null,
  primary key (run_key, output_id)
);

create or replace function ws_refuse_mutation() returns trigger language plpgsql as $$
begin
  raise exception '% is append-only', tg_table_name using errcode = 'restrict_violation';
end
$$;

create or replace trigger ws_ready_ledger_append_only before update or delete on ws_ready_ledger
  for each row execute function ws_refuse_mutation();
create or replace trigger ws_audit_events_append_only before update or delete on ws_audit_events
  for each row execute function ws_refuse_mutation();
create or replace trigger ws_receipts_append_only before update or delete on ws_receipts
  for each row execute function ws_refuse_mutation();
create or replace trigger ws_budget_ledger_append_only before update or delete on ws_budget_ledger
  for each row execute function ws_refuse_mutation();
create or replace trigger ws_policy_snapshots_append_only before update or delete on ws_policy_snapshots
  for each row execute function ws_refuse_mutation();
