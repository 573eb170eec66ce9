-- 0004_control_bus_positions: where the Kinesis control bus listener resumes, per shard.
--
-- Model. The listener reads every shard of its stream in order and settles each record (a READY
-- ledger decision) before it moves on; only then is the record's sequence number journaled (WAL
-- kind `bus_position`) and drained here, so no position is ever saved past a record that was
-- not handled. A restart reads each shard AFTER_SEQUENCE_NUMBER of its row (TRIM_HORIZON when it
-- has none), neither missing nor re-handling a message. `finished`: the shard was closed by a
-- split or merge and read to its end, so its children may be read. Positions only move forward
-- (queries/bus_position_save.sql); sequence numbers are compared as numbers, not as text.
--
-- DDL is idempotent, like 0001-0003.

create table if not exists ws_control_bus_positions (
  stream text not null,
  shard_id text not null,
  sequence_number numeric,
  finished boolean not null default false,
  updated_at_utc timestamptz not null,
  primary key (stream, shard_id)
);
