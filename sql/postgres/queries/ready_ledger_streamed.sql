-- Whether a message was ever streamed: later SKIPPED_DUPLICATE rows do not undo a STREAMED one.
-- $1 message_id
select exists (
  select 1 from ws_ready_ledger where message_id = $1 and status = 'STREAMED'
) as streamed
