-- Upserts many control bus positions in one statement (arrays, one element per shard). A
-- position only moves forward: a lower sequence number is ignored, and a finished shard stays
-- finished, so a replayed or late WAL record never makes the listener re-handle a message.
-- Sequence numbers and the finished flags travel as text ('' for none; 'true'/'false'): the server
-- client binds text arrays, and a boolean array it sends as one boolean.
insert into ws_control_bus_positions (stream, shard_id, sequence_number, finished, updated_at_utc)
select s, h, nullif(q, '')::numeric, f::boolean, u from unnest(
  $1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]
) as x(s, h, q, f, u)
on conflict (stream, shard_id) do update set
  sequence_number = greatest(ws_control_bus_positions.sequence_number, excluded.sequence_number),
  finished = ws_control_bus_positions.finished or excluded.finished,
  updated_at_utc = excluded.updated_at_utc
where excluded.sequence_number > ws_control_bus_positions.sequence_number
  or (ws_control_bus_positions.sequence_number is null and excluded.sequence_number is not null)
  or (excluded.finished and not ws_control_bus_positions.finished)
