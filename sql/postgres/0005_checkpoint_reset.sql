-- 0005_checkpoint_reset: an operator may move a checkpoint (POST /v1/checkpoints/{scope}/{output}/
-- reset, actions/checkpoint_reset.ts), backwards to re-send events or forwards to skip them. The
-- cursor it replaced is kept beside it (previous_*), so the reset can be undone; reset_at_utc
-- says when the last reset happened (NULL: never reset). A reset travels as a `checkpoint_reset`
-- WAL record and the drain applies it unconditionally, in WAL order (checkpoint_reset.sql), while
-- ordinary checkpoints stay forward-only (checkpoint_save.sql).
--
-- DDL is idempotent, like 0001 to 0004.

alter table ws_checkpoints add column if not exists previous_seq bigint;
alter table ws_checkpoints add column if not exists previous_file text;
alter table ws_checkpoints add column if not exists previous_row_index bigint;
alter table ws_checkpoints add column if not exists previous_ts_utc text;
alter table ws_checkpoints add column if not exists reset_at_utc timestamptz;
