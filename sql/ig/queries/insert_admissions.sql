-- Admits the candidates of one batch: the first occurrence of each dedupe key, in input order
-- (so `admitted_seq` follows it). A key that is already stored is skipped, never updated; the
-- caller reads the stored hash back (stored_admissions.sql) to tell a duplicate from a mismatch.
-- $1..$6: parallel arrays, one element per candidate; $7: the candidates' envelopes as JSON
-- texts joined by newlines (JSON text has none of its own), which costs far less to pass and
-- parse than an array of quoted strings; $8: admission time of the batch.
insert into ig_admissions
  (dedupe_key, platform_run_id, event_class, event_id, event_type, payload_hash, admitted_at_utc,
   envelope)
select u.dedupe_key, u.platform_run_id, u.event_class, u.event_id, u.event_type, u.payload_hash,
  $8::text, u.envelope
from rows from (
    unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::text[]),
    unnest($5::text[]), unnest($6::text[]), string_to_table($7::text, E'\n')
  ) with ordinality
  as u(dedupe_key, platform_run_id, event_class, event_id, event_type, payload_hash, envelope, ord)
order by u.ord
on conflict (dedupe_key) do nothing
returning dedupe_key, admitted_seq
