-- 0002_dead_letter_status: dead letters an operator lists and retries, and the history of retries.
--
-- Model. A dead letter (ws_dead_letters) is a work item: OPEN from the moment the courier gives up
-- on an envelope until a retry the gate accepts (ADMIT or DUPLICATE) makes it CLOSED. A CLOSED
-- dead letter never reopens. Nothing here is written directly: each retry of one dead letter is a
-- WAL record (kind `dead_letter_retry`) appended together with the receipt that vouches for it,
-- and the drain (queries/wal_drain_dead_letter_retries.sql) inserts it into
-- ws_dead_letter_retries, an append-only log keyed by record_id, and folds only the rows it
-- actually inserted into the dead letter. A replayed WAL record therefore inserts nothing and
-- changes nothing: `attempts` and `retries` grow once per retry.
--
--   * seq: arrival order, for listing and keyset paging (as ws_receipts.seq);
--   * attempts: every request that carried the envelope, the courier's and the retries';
--   * retries: operator retries so far; last_retry_at: when the latest one was made;
--   * closed_at, closed_receipt_id: the retry that closed it and the receipt that says so.
--
-- DDL is idempotent, like 0001, so a half-applied manual run can be finished by the runner.

alter table ws_dead_letters add column if not exists seq bigserial;
alter table ws_dead_letters add column if not exists retries int not null default 0;
alter table ws_dead_letters add column if not exists last_retry_at timestamptz;
alter table ws_dead_letters add column if not exists closed_at timestamptz;
alter table ws_dead_letters add column if not exists closed_receipt_id text;

create unique index if not exists ws_dead_letters_seq on ws_dead_letters (seq);
create index if not exists ws_dead_letters_status_seq on ws_dead_letters (status, seq);
create index if not exists ws_dead_letters_platform_run
  on ws_dead_letters ((envelope->>'platform_run_id'), seq);

-- One row per retry of one dead letter: what was sent how often, what the gate said, and the
-- receipt appended with it.
create table if not exists ws_dead_letter_retries (
  record_id text primary key,
  dead_letter_id text not null,
  run_key text not null,
  output_id text not null,
  event_id text not null,
  retry int not null,
  outcome text not null check (outcome in ('OPEN', 'CLOSED')),
  decision text,
  requests int not null,
  last_status int,
  reason text,
  message text,
  receipt_id text not null,
  actor text not null,
  at timestamptz not null
);
create index if not exists ws_dead_letter_retries_letter
  on ws_dead_letter_retries (dead_letter_id, retry);

create or replace trigger ws_dead_letter_retries_append_only
  before update or delete on ws_dead_letter_retries
  for each row execute function ws_refuse_mutation();
