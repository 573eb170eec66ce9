-- Admissions by dedupe key (any that exist), in admission order.
select dedupe_key, admitted_seq, platform_run_id, event_class, event_id, event_type, payload_hash,
  admitted_at_utc, envelope
from ig_admissions
where dedupe_key = any($1::text[])
order by admitted_seq
