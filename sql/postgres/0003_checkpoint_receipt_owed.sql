-- 0003_checkpoint_receipt_owed: delivery receipts coalesce (at most one per output per second)
-- while checkpoints advance with every WAL group commit, so a checkpoint may cover events no
-- receipt vouches for yet. receipt_owed says which ({from_seq, admitted, duplicate, quarantined,
-- dead_lettered}: the events from from_seq to last_seq and their answers), so that a restart
-- after a crash writes that receipt before it streams on and the receipt chain covers every
-- delivered event. NULL: the checkpoint's events are all covered by receipts.
--
-- DDL is idempotent, like 0001 and 0002.

alter table ws_checkpoints add column if not exists receipt_owed jsonb;
