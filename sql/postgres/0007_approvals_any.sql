-- 0007_approvals_any: every action of the actions layer can be parked, and a parked action keeps
-- the decision that parked it.
--
-- Model. An approval (0006) said who asked, what and why in one line (`reason`). A denial or an
-- expiry is a refusal, and every refusal's receipt carries the whole explanation `deno task
-- explain` prints: principal, capability, the matching rule's 0-based index and text, the risk
-- and where it came from, and the reason. `explanation` keeps that object with the approval from
-- the moment it is parked, so the `policy_denied` receipt written when it is denied or expires
-- (maybe hours later, maybe by another process) carries it even if the policy changed meanwhile.
-- Approvals parked before this migration have none (null).
--
-- DDL is idempotent, like 0001, so a half-applied manual run can be finished by the runner.

alter table ws_approvals add column if not exists explanation jsonb;
