package hourglass

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
)

func TestBackoffGrowsToItsCapWithJitterBetweenHalfAndAll(t *testing.T) {
	p := DefaultRetry
	for retry, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 5: 1600 * time.Millisecond, 9: 3 * time.Second} {
		if got := p.backoff(retry, 0.999999); got > full || got < full*99/100 {
			t.Errorf("retry %d, most jitter: %v, want about %v", retry, got, full)
		}
		if got := p.backoff(retry, 0); got != full/2 {
			t.Errorf("retry %d, no jitter: %v, want %v", retry, got, full/2)
		}
	}
}

func TestAnUnkeyedSubmitAndATriggerRetryOnlyWhatWasRefusedUnread(t *testing.T) {
	keyed := &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{IdempotencyKey: "k"}}
	cases := []struct {
		method string
		req    any
		want   []codes.Code
	}{
		{hourglassv1.JobService_SubmitJob_FullMethodName, keyed, retryRead},
		{hourglassv1.JobService_SubmitJob_FullMethodName, &hourglassv1.SubmitJobRequest{Job: &hourglassv1.JobSpec{}}, refusedUnread},
		{hourglassv1.JobService_SubmitJobs_FullMethodName, &hourglassv1.SubmitJobsRequest{Jobs: []*hourglassv1.JobSpec{keyed.Job, {}}}, refusedUnread},
		{hourglassv1.JobService_TriggerJob_FullMethodName, &hourglassv1.TriggerJobRequest{}, refusedUnread},
		{hourglassv1.JobService_GetJob_FullMethodName, &hourglassv1.GetJobRequest{}, retryRead},
		{hourglassv1.JobService_PauseJob_FullMethodName, &hourglassv1.PauseJobRequest{}, retryRead},
	}
	for _, c := range cases {
		if got := retryableCodes(c.method, c.req); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.method, got, c.want)
		}
	}
}

func TestRetryPolicyIsValidated(t *testing.T) {
	for _, bad := range []RetryPolicy{{MaxAttempts: 0, Multiplier: 1}, {MaxAttempts: 2, InitialBackoff: 2, MaxBackoff: 1, Multiplier: 2}, {MaxAttempts: 2, Multiplier: 0.5}} {
		if bad.validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if err := (RetryPolicy{MaxAttempts: 1, Multiplier: 1}).validate(); err != nil {
		t.Errorf("no retries refused: %v", err)
	}
}
