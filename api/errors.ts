/**
 * The admin API's one error mapper: a reason code becomes an HTTP status and the JSON body
 * `{error, reason, detail}` (`error`: the status's name, `reason`: the code, `detail`: the
 * one-line message). Every failure of every route goes through here, so a client branches on
 * `reason` and never parses prose.
 */
import type { WorldstreamError } from "../schemas/errors.ts";
import type { ReasonCode } from "../schemas/reasons.ts";

/** The error body every route answers a failure with. */
export interface ErrorBody {
  readonly error: string;
  readonly reason: string;
  readonly detail: string;
}

/** Statuses of the codes that are not 422 (a request understood but refused). */
const STATUS: Partial<Record<ReasonCode, number>> = {
  ADMIN_UNAUTHORIZED: 401,
  ADMIN_FORBIDDEN: 403,
  ADMIN_CSRF_REFUSED: 403,
  ADMIN_ROUTE_NOT_FOUND: 404,
  ADMIN_BODY_INVALID: 400,
  ADMIN_PARAM_INVALID: 400,
  BAD_ARGS: 400,
  ADMIN_BODY_TOO_LARGE: 413,
  ADMIN_STARTING: 503,
  RUN_NOT_FOUND: 404,
  DEAD_LETTER_NOT_FOUND: 404,
  RUN_IN_FLIGHT: 409,
  RUN_UNKNOWN: 404,
  RUN_FINISHED: 409,
  RUN_NOT_RUNNING: 409,
  RUN_NOT_PAUSED: 409,
  REPLAY_WINDOW_INVALID: 400,
  REPLAY_WINDOW_REVERSED: 400,
  CHECKPOINT_RESET_INVALID: 400,
  CHECKPOINT_RESET_OUTSIDE_VIEW: 400,
  CHECKPOINT_UNKNOWN: 404,
  CHECKPOINT_OUTPUT_STREAMING: 409,
  CHECKPOINT_NO_PREVIOUS: 409,
  CHECKPOINT_RECEIPT_OWED: 409,
  POLICY_DENIED: 403,
  APPROVAL_UNKNOWN: 404,
  APPROVAL_ALREADY_DECIDED: 409,
  APPROVAL_EXPIRED: 409,
  APPROVAL_ACTION_GONE: 409,
  PG_UNAVAILABLE: 503,
  READY_LEDGER_UNAVAILABLE: 503,
  IG_UNREACHABLE: 503,
  WAL_QUOTA_EXCEEDED: 503,
  WAL_CLOSED: 503,
  INTERNAL_ERROR: 500,
};

const NAMES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  413: "Content Too Large",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** The HTTP status of a reason code. */
export function httpStatusOf(reason: ReasonCode): number {
  return STATUS[reason] ?? 422;
}

/** The status and body of a failure. */
export function errorAnswer(
  e: Pick<WorldstreamError, "reason" | "message">,
): { readonly status: number; readonly body: ErrorBody } {
  const status = httpStatusOf(e.reason);
  return { status, body: { error: NAMES[status] ?? "Error", reason: e.reason, detail: e.message } };
}
