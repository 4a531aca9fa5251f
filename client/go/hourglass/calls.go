package hourglass

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

type tokenKey struct{}

// ContextWithToken makes the calls made with ctx send token instead of the Client's.
func ContextWithToken(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, tokenKey{}, token)
}

// withAuthorization adds the bearer token to the call's metadata, unless the caller set
// "authorization" itself.
func (c *config) withAuthorization(ctx context.Context) context.Context {
	token := c.token
	if override, ok := ctx.Value(tokenKey{}).(string); ok {
		token = override
	}
	if token == "" {
		return ctx
	}
	if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get("authorization")) > 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// unaryInterceptor sends the token, retries what the call may retry, and returns *Error.
func (c *config) unaryInterceptor(
	ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption,
) error {
	ctx = c.withAuthorization(ctx)
	retryable := retryableCodes(method, req)
	for attempt := 1; ; attempt++ {
		err := asError(invoker(ctx, method, req, reply, cc, opts...))
		failed, ok := err.(*Error)
		if !ok || attempt >= c.retry.MaxAttempts || !slices.Contains(retryable, failed.Code) {
			return err
		}
		delay := max(c.retry.backoff(attempt, randomJitter()), failed.RetryAfter)
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) < delay {
			return err
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

// streamInterceptor sends the token and returns *Error from the stream (no retries: a
// stream's events are not replayed).
func (c *config) streamInterceptor(
	ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption,
) (grpc.ClientStream, error) {
	stream, err := streamer(c.withAuthorization(ctx), desc, cc, method, opts...)
	if err != nil {
		return nil, asError(err)
	}
	return errorStream{stream}, nil
}

type errorStream struct {
	grpc.ClientStream
}

func (s errorStream) RecvMsg(m any) error {
	return asError(s.ClientStream.RecvMsg(m))
}

func (s errorStream) SendMsg(m any) error {
	return asError(s.ClientStream.SendMsg(m))
}
