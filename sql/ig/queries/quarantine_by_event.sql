-- Every quarantined attempt of one event id, oldest first.
select quarantine_seq, received_at_utc, reason_code, detail, record
from ig_quarantine
where event_id = $1
order by quarantine_seq
