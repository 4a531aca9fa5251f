// Shorthands for the messages a job spec is made of: triggers, durations, JSON params.
import type { Duration } from "./gen/google/protobuf/duration";
import type { Payload, Trigger } from "./gen/hourglass/v1/jobs";

/** A protobuf Duration of `ms` milliseconds (not negative). */
export function duration(ms: number): Duration {
  if (!(ms >= 0)) {
    throw new RangeError(`a duration cannot be negative: ${ms} ms`);
  }
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

/** Fires once, at `at`. */
export function once(at: Date): Trigger {
  return { once: { at } };
}

/** Fires every `ms` milliseconds from `start` (default: when submitted), until `end`. */
export function every(ms: number, start?: Date, end?: Date): Trigger {
  return { interval: { every: duration(ms) }, start, end };
}

/** Fires on a cron expression (5 fields, or 6 with seconds first) in an IANA time zone. */
export function cron(expression: string, timezone = "UTC"): Trigger {
  return { cron: { expression, timezone, dstGap: 0, dstRepeat: 0 } };
}

/** Job params (or a result) as JSON. */
export function json(value: unknown): Payload {
  return { data: Buffer.from(JSON.stringify(value)), contentType: "application/json" };
}

/** A JSON payload's value (a run's result, say); undefined for an empty one. */
export function parseJson(payload: Payload | undefined): unknown {
  if (payload === undefined || payload.data.length === 0) {
    return undefined;
  }
  return JSON.parse(payload.data.toString("utf8")) as unknown;
}
