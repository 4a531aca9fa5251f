package hourglass

import (
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
)

// RetryPolicy says how often and how long a Client retries a call that failed with a status
// that is safe to retry for it (see retryableCodes). The delay before attempt n+1 is
// InitialBackoff * Multiplier^(n-1), capped at MaxBackoff, with jitter (between half and all
// of it), or the coordinator's RetryInfo delay where that is longer. No retry starts past the
// call's context deadline.
type RetryPolicy struct {
	MaxAttempts    int // the first included; 1: no retry
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
}

// DefaultRetry is the Python SDK's: 5 attempts, 100 ms doubling up to 3 s.
var DefaultRetry = RetryPolicy{MaxAttempts: 5, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second, Multiplier: 2}

func (p RetryPolicy) validate() error {
	if p.MaxAttempts < 1 {
		return errors.New("hourglass: RetryPolicy.MaxAttempts must be at least 1")
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < p.InitialBackoff || p.Multiplier < 1 {
		return errors.New("hourglass: RetryPolicy needs 0 <= InitialBackoff <= MaxBackoff and Multiplier >= 1")
	}
	return nil
}

// backoff is the delay before retry number retry (1 for the second attempt); jitter in [0, 1).
func (p RetryPolicy) backoff(retry int, jitter float64) time.Duration {
	delay := float64(p.InitialBackoff)
	for i := 1; i < retry && delay < float64(p.MaxBackoff); i++ {
		delay *= p.Multiplier
	}
	delay = min(delay, float64(p.MaxBackoff))
	return time.Duration(delay * (0.5 + jitter/2))
}

func randomJitter() float64 {
	return rand.Float64() // spreading retries needs no secure randomness
}

// Which failures each call may retry. UNAVAILABLE: the request was not processed, or a
// backend could not be reached; RESOURCE_EXHAUSTED: the coordinator, at its limit of calls at
// once, refused it unread. Reads and idempotent writes retry both. A submit without an
// idempotency key and TriggerJob could be applied twice after an UNAVAILABLE, so they retry
// only what was refused unread. (DEADLINE_EXCEEDED is never retried: the context's deadline
// is the whole call's.)
var (
	retryRead     = []codes.Code{codes.Unavailable, codes.ResourceExhausted}
	refusedUnread = []codes.Code{codes.ResourceExhausted}
	nonIdempotent = map[string]bool{
		hourglassv1.JobService_TriggerJob_FullMethodName: true,
	}
)

// retryableCodes are the codes a call of method with request req may retry.
func retryableCodes(method string, req any) []codes.Code {
	switch r := req.(type) {
	case *hourglassv1.SubmitJobRequest:
		if r.GetJob().GetIdempotencyKey() == "" {
			return refusedUnread
		}
	case *hourglassv1.SubmitJobsRequest:
		for _, spec := range r.GetJobs() {
			if spec.GetIdempotencyKey() == "" {
				return refusedUnread
			}
		}
	}
	if nonIdempotent[method] {
		return refusedUnread
	}
	return retryRead
}
