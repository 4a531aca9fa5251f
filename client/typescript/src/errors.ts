// Errors of the Hourglass client: one class, carrying the gRPC status and what the coordinator's
// rich error details (google.rpc.Status in the grpc-status-details-bin trailer) say.
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { BadRequest, RetryInfo } from "./gen/google/rpc/error_details";
import { Status } from "./gen/google/rpc/status";

const DETAILS_TRAILER = "grpc-status-details-bin";
const BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest";
const RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo";
// "trigger.cron.timezone: unknown zone" / "jobs[2].name: required": the coordinator's messages
// name the field first; used when a status carries no BadRequest (older coordinators).
const FIELD_PREFIX = /^([A-Za-z_][\w.]*(?:\[[^\]]*\][\w.]*)*): ([\s\S]*)$/;

/** What a status's google.rpc details say: the first BadRequest field violation's field, and
 * RetryInfo's delay in milliseconds. */
export interface RichDetails {
  readonly field: string;
  readonly retryAfterMs: number | undefined;
}

/** Reads a serialized google.rpc.Status (the grpc-status-details-bin trailer's value). Bytes
 * that do not decode give no details: the status code and message still stand. */
export function readRichDetails(bytes: Uint8Array | undefined): RichDetails {
  let field = "";
  let retryAfterMs: number | undefined;
  if (bytes === undefined || bytes.length === 0) {
    return { field, retryAfterMs };
  }
  try {
    for (const detail of Status.decode(bytes).details) {
      if (detail.typeUrl === BAD_REQUEST && field === "") {
        field = BadRequest.decode(detail.value).fieldViolations[0]?.field ?? "";
      } else if (detail.typeUrl === RETRY_INFO && retryAfterMs === undefined) {
        const delay = RetryInfo.decode(detail.value).retryDelay;
        retryAfterMs = delay === undefined ? undefined : delay.seconds * 1000 + delay.nanos / 1e6;
      }
    }
  } catch {
    return { field: "", retryAfterMs: undefined };
  }
  return { field, retryAfterMs };
}

/** A failed call: `code` is the gRPC status (`status.INVALID_ARGUMENT`, ...), `codeName` its
 * name, `field` the request field a bad request named ("" if none), `retryAfterMs` how long the
 * coordinator asked the caller to wait (UNAVAILABLE, RESOURCE_EXHAUSTED), `attempts` how many
 * calls were made. The message is the coordinator's, prefixed with the code's name. */
export class HourglassError extends Error {
  override readonly name = "HourglassError";

  constructor(
    readonly code: Code,
    readonly details: string,
    readonly field: string = "",
    readonly retryAfterMs: number | undefined = undefined,
    readonly attempts: number = 1,
  ) {
    super(`${Code[code] ?? `code ${code}`}: ${details}`);
  }

  get codeName(): string {
    return Code[this.code] ?? String(this.code);
  }
}

/** The error for a status: the field from a BadRequest detail, else from a "field: message"
 * message of an INVALID_ARGUMENT or a PERMISSION_DENIED about an executor. */
export function errorFromStatus(code: Code, details: string, rich: RichDetails, attempts = 1): HourglassError {
  let field = rich.field;
  if (field === "" && (code === Code.INVALID_ARGUMENT || code === Code.PERMISSION_DENIED)) {
    const match = FIELD_PREFIX.exec(details);
    if (match !== null && (code === Code.INVALID_ARGUMENT || match[1]!.endsWith("executor"))) {
      field = match[1]!;
    }
  }
  return new HourglassError(code, details, field, rich.retryAfterMs, attempts);
}

/** The error for a failed grpc-js call. */
export function errorFromServiceError(error: ServiceError, attempts = 1): HourglassError {
  const metadata = error.metadata instanceof Metadata ? error.metadata : new Metadata();
  const [bytes] = metadata.get(DETAILS_TRAILER);
  const rich = readRichDetails(typeof bytes === "string" ? undefined : bytes);
  return errorFromStatus(error.code, error.details, rich, attempts);
}
