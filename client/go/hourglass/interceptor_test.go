package hourglass

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
)

// flaky answers UNAVAILABLE `failures` times, then the job; it records each call's token.
type flaky struct {
	hourglassv1.UnimplementedJobServiceServer
	mu       sync.Mutex
	failures int
	calls    int
	tokens   []string
}

func (f *flaky) GetJob(ctx context.Context, req *hourglassv1.GetJobRequest) (*hourglassv1.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	md, _ := metadata.FromIncomingContext(ctx)
	f.tokens = append(f.tokens, md.Get("authorization")...)
	if f.calls <= f.failures {
		return nil, status.Error(codes.Unavailable, "backend away")
	}
	return &hourglassv1.Job{Id: req.GetId()}, nil
}

func (f *flaky) TriggerJob(context.Context, *hourglassv1.TriggerJobRequest) (*hourglassv1.TriggerJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return nil, status.Error(codes.Unavailable, "backend away")
}

func (f *flaky) WatchRuns(_ *hourglassv1.WatchRunsRequest, stream hourglassv1.JobService_WatchRunsServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	if err := stream.Send(&hourglassv1.RunEvent{Run: &hourglassv1.Run{RunId: "r1"}}); err != nil {
		return err
	}
	return status.Errorf(codes.PermissionDenied, "token %v may not watch", md.Get("authorization"))
}

func serve(t *testing.T, impl hourglassv1.JobServiceServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	hourglassv1.RegisterJobServiceServer(server, impl)
	go func() { _ = server.Serve(lis) }()
	t.Cleanup(server.Stop)
	return lis.Addr().String()
}

var fast = RetryPolicy{MaxAttempts: 4, InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Multiplier: 2}

func TestAReadIsRetriedOnUnavailableWithTheTokenEachTime(t *testing.T) {
	f := &flaky{failures: 2}
	c, err := Dial(serve(t, f), WithToken("t1"), WithRetry(fast))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	job, err := c.GetJob(context.Background(), &hourglassv1.GetJobRequest{Id: "j"})
	if err != nil || job.GetId() != "j" || f.calls != 3 {
		t.Fatalf("job %v err %v after %d calls", job, err, f.calls)
	}
	for _, token := range f.tokens {
		if token != "Bearer t1" {
			t.Fatalf("tokens sent: %v", f.tokens)
		}
	}
	if _, err := c.GetJob(ContextWithToken(context.Background(), "t2"), &hourglassv1.GetJobRequest{}); err != nil {
		t.Fatal(err)
	}
	if last := f.tokens[len(f.tokens)-1]; last != "Bearer t2" {
		t.Fatalf("per-call token not sent: %v", f.tokens)
	}
}

func TestRetriesStopAtMaxAttemptsAndTheErrorKeepsItsCode(t *testing.T) {
	f := &flaky{failures: 100}
	c, err := Dial(serve(t, f), WithRetry(fast))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetJob(context.Background(), &hourglassv1.GetJobRequest{})
	e, ok := err.(*Error)
	if !ok || e.Code != codes.Unavailable || f.calls != fast.MaxAttempts || len(f.tokens) != 0 {
		t.Fatalf("err %#v after %d calls, tokens %v", err, f.calls, f.tokens)
	}
}

func TestATriggerIsNotRepeatedAfterUnavailable(t *testing.T) {
	f := &flaky{}
	c, err := Dial(serve(t, f), WithRetry(fast))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.TriggerJob(context.Background(), &hourglassv1.TriggerJobRequest{}); status.Code(err) != codes.Unavailable || f.calls != 1 {
		t.Fatalf("err %v after %d calls", err, f.calls)
	}
}

func TestAStreamSendsTheTokenAndEndsWithAnError(t *testing.T) {
	c, err := Dial(serve(t, &flaky{}), WithToken("t1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stream, err := c.WatchRuns(context.Background(), &hourglassv1.WatchRunsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if event, err := stream.Recv(); err != nil || event.GetRun().GetRunId() != "r1" {
		t.Fatalf("event %v, err %v", event, err)
	}
	_, err = stream.Recv()
	e, ok := err.(*Error)
	if !ok || e.Code != codes.PermissionDenied || e.Message != "token [Bearer t1] may not watch" {
		t.Fatalf("got %#v", err)
	}
}
