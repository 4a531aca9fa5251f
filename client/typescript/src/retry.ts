// When to try a failed call again: pure arithmetic, so it is tested without a server or a clock.
import { status as Code } from "@grpc/grpc-js";

/** How a client retries a call that failed with a retryable status: at most `maxAttempts`
 * attempts (the first included); the delay before attempt n+1 is
 * `initialBackoffMs * multiplier^(n-1)`, capped at `maxBackoffMs`, with jitter (between half
 * and all of it); no attempt starts later than `maxElapsedMs` after the call began. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly maxElapsedMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 3000,
  multiplier: 2,
  maxElapsedMs: 30_000,
};

// The statuses each kind of call may retry: the server did not (or may have, harmlessly) act.
export const READ: ReadonlySet<Code> = new Set([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED, Code.DEADLINE_EXCEEDED]);
export const IDEMPOTENT_WRITE: ReadonlySet<Code> = new Set([Code.UNAVAILABLE, Code.RESOURCE_EXHAUSTED]);
// RESOURCE_EXHAUSTED is the coordinator's admission control: it refused the call unread.
export const REFUSED_UNREAD: ReadonlySet<Code> = new Set([Code.RESOURCE_EXHAUSTED]);
export const NO_RETRY: ReadonlySet<Code> = new Set();

/** Milliseconds to wait before the next attempt, or undefined when the call must give up: the
 * status is not in `retryOn`, attempts are used up, or time is. `attempts` is how many were
 * made; the wait is the backoff, or `retryAfterMs` (what the coordinator asked) where longer. */
export function retryDelayMs(
  policy: RetryPolicy,
  code: Code,
  retryOn: ReadonlySet<Code>,
  attempts: number,
  elapsedMs: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (!retryOn.has(code) || attempts >= policy.maxAttempts) {
    return undefined;
  }
  const cap = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** (attempts - 1));
  const delay = Math.max(cap * (0.5 + random() / 2), retryAfterMs ?? 0);
  return elapsedMs + delay > policy.maxElapsedMs ? undefined : delay;
}
