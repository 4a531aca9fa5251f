package hourglass

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is what a Client's calls return when the coordinator answers with an error status
// (or none can be reached): its code, its message, and what its google.rpc details say.
// status.Code(err) and status.FromError(err) work on it too.
type Error struct {
	Code    codes.Code
	Message string
	// The request field at fault ("job.trigger.cron.timezone", "jobs[2].name", "until"),
	// from the BadRequest detail's first field violation, else from a "field: message"
	// message of an INVALID_ARGUMENT; empty when none is named.
	Field string
	// How long the coordinator asked the caller to wait before trying again (RetryInfo);
	// zero when it did not say.
	RetryAfter time.Duration

	status *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("hourglass: %s: %s", e.Code, e.Message)
}

// GRPCStatus is the status as received, details included.
func (e *Error) GRPCStatus() *status.Status {
	return e.status
}

// A message naming its field ("trigger.cron.timezone: unknown zone", "jobs[0].name: ...").
var fieldPrefix = regexp.MustCompile(`(?s)^([A-Za-z_][\w.]*(?:\[[^\]]*\][\w.]*)*): (.*)$`)

// fromStatus reads the rich details of st (BadRequest, RetryInfo) into an Error.
func fromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.BadRequest:
			if e.Field == "" && len(d.GetFieldViolations()) > 0 {
				e.Field = d.GetFieldViolations()[0].GetField()
			}
		case *errdetails.RetryInfo:
			if e.RetryAfter == 0 && d.GetRetryDelay() != nil {
				e.RetryAfter = max(0, d.GetRetryDelay().AsDuration())
			}
		}
	}
	if e.Field == "" && e.Code == codes.InvalidArgument {
		if m := fieldPrefix.FindStringSubmatch(e.Message); m != nil {
			e.Field = m[1]
		}
	}
	return e
}

// asError turns a gRPC call's error into an *Error; nil, non-status errors (io.EOF at the end
// of a stream) and errors already converted pass through.
func asError(err error) error {
	if err == nil {
		return nil
	}
	var converted *Error
	if errors.As(err, &converted) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return fromStatus(st)
}
