-- One page of a run's admitted envelopes in admission order, after a position: a walk along the
-- admission-order key from $2, keeping the run's rows, so every page costs about the same
-- however deep it is.
select admitted_seq, envelope
from ig_admissions
where admitted_seq > $2 and platform_run_id = $1
order by admitted_seq
limit $3
