package hourglass

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func withDetails(t *testing.T, code codes.Code, msg string, details ...*errdetails.BadRequest) *status.Status {
	t.Helper()
	st := status.New(code, msg)
	for _, d := range details {
		var err error
		if st, err = st.WithDetails(d); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestFieldComesFromTheBadRequestDetail(t *testing.T) {
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: "jobs[1].trigger.cron.timezone", Description: "unknown zone"}, {Field: "second"},
	}}
	e := fromStatus(withDetails(t, codes.InvalidArgument, "jobs[1].trigger.cron.timezone: unknown zone", bad))
	if e.Code != codes.InvalidArgument || e.Field != "jobs[1].trigger.cron.timezone" {
		t.Fatalf("got code %v field %q", e.Code, e.Field)
	}
}

func TestFieldFallsBackToTheMessagePrefixOfAnInvalidArgument(t *testing.T) {
	for msg, want := range map[string]string{
		"until: must be after since":          "until",
		"jobs[0].name: required\nmore detail": "jobs[0].name",
		"no field named here":                 "",
	} {
		if got := fromStatus(status.New(codes.InvalidArgument, msg)).Field; got != want {
			t.Errorf("%q: field %q, want %q", msg, got, want)
		}
	}
	if got := fromStatus(status.New(codes.NotFound, "job: x not found")).Field; got != "" {
		t.Errorf("NOT_FOUND took a field from its message: %q", got)
	}
}

func TestRetryInfoBecomesRetryAfter(t *testing.T) {
	st, err := status.New(codes.ResourceExhausted, "busy").WithDetails(
		&errdetails.RetryInfo{RetryDelay: durationpb.New(250 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	if got := fromStatus(st).RetryAfter; got != 250*time.Millisecond {
		t.Fatalf("RetryAfter %v", got)
	}
}

func TestAsErrorKeepsTheStatusAndPassesOtherErrorsThrough(t *testing.T) {
	plain := errors.New("EOF")
	if asError(plain) != plain || asError(nil) != nil {
		t.Fatal("a non-status error was changed")
	}
	err := asError(status.Error(codes.PermissionDenied, "no write role"))
	var e *Error
	if !errors.As(fmt.Errorf("wrapped: %w", err), &e) || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("got %#v", err)
	}
	if err.Error() != "hourglass: PermissionDenied: no write role" {
		t.Fatalf("message %q", err.Error())
	}
}
