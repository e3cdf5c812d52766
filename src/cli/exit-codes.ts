// The CLI's exit codes, in one place: 0 done, 1 the operation failed (or found nothing), 2 the input
// or the configuration is wrong. Every error code of the catalogue has its exit code here.
import type { ErrorCode } from '../platform/errors.ts';

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;
/** A second Ctrl-C / SIGTERM while shutting down: 128 + SIGINT, as shells report an interrupted command. */
export const EXIT_INTERRUPTED = 130;

export const EXIT_CODE: Record<ErrorCode, number> = {
  unauthorized: EXIT_FAILED,
  forbidden: EXIT_FAILED,
  invalid_credentials: EXIT_FAILED,
  second_factor_required: EXIT_FAILED,
  second_factor_enrollment_required: EXIT_FAILED,
  tenant_required: EXIT_BAD_INPUT,
  csrf_failed: EXIT_FAILED,
  session_expired: EXIT_FAILED,
  bad_request: EXIT_BAD_INPUT,
  uri_too_long: EXIT_BAD_INPUT,
  headers_too_large: EXIT_BAD_INPUT,
  request_timeout: EXIT_FAILED,
  not_found: EXIT_BAD_INPUT,
  method_not_allowed: EXIT_BAD_INPUT,
  validation_failed: EXIT_BAD_INPUT,
  invalid_cursor: EXIT_BAD_INPUT,
  invalid_token: EXIT_BAD_INPUT,
  invalid_json: EXIT_BAD_INPUT,
  unsupported_media_type: EXIT_BAD_INPUT,
  payload_too_large: EXIT_BAD_INPUT,
  conflict: EXIT_FAILED,
  ticket_changed: EXIT_FAILED,
  identity_taken: EXIT_FAILED,
  merge_into_self: EXIT_BAD_INPUT,
  invalid_calendar: EXIT_BAD_INPUT,
  calendar_has_no_business_time: EXIT_BAD_INPUT,
  invalid_time_zone: EXIT_BAD_INPUT,
  invalid_instant: EXIT_BAD_INPUT,
  deadline_out_of_range: EXIT_BAD_INPUT,
  webhook_signature_invalid: EXIT_FAILED,
  provider_credentials_rejected: EXIT_BAD_INPUT,
  rate_limited: EXIT_FAILED,
  database_unavailable: EXIT_FAILED,
  provider_unavailable: EXIT_FAILED,
  queue_unavailable: EXIT_FAILED,
  migrations_pending: EXIT_FAILED,
  console_not_built: EXIT_FAILED,
  internal_error: EXIT_FAILED,
};
