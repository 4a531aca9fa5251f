// Package hourglass is a small client of the Hourglass job scheduler's gRPC API.
//
// A Client is the generated JobServiceClient (every RPC, typed by the messages of
// github.com/hourglass/hourglass/client/go/gen/hourglass/v1) behind a connection that adds
// what every call needs: the bearer token, TLS, retries of calls that are safe to repeat, and
// errors as *Error carrying the gRPC code and the field the coordinator named.
//
//	c, err := hourglass.Dial("127.0.0.1:7070", hourglass.WithToken(token))
//	if err != nil { ... }
//	defer c.Close()
//	job, err := c.GetJob(ctx, &hourglassv1.GetJobRequest{Id: id})
package hourglass

import (
	"fmt"

	"google.golang.org/grpc"

	hourglassv1 "github.com/hourglass/hourglass/client/go/gen/hourglass/v1"
)

// Client calls one coordinator (or several behind one address). Safe for concurrent use.
type Client struct {
	hourglassv1.JobServiceClient
	conn *grpc.ClientConn
}

// Dial returns a Client of the coordinator at address ("host:port"). It connects lazily: an
// unreachable coordinator shows as UNAVAILABLE on the first call, after its retries.
func Dial(address string, opts ...Option) (*Client, error) {
	cfg := defaults()
	for _, opt := range opts {
		if err := opt(&cfg); err != nil {
			return nil, err
		}
	}
	creds, err := cfg.transportCredentials()
	if err != nil {
		return nil, err
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(cfg.unaryInterceptor),
		grpc.WithChainStreamInterceptor(cfg.streamInterceptor),
	}, cfg.dialOptions...)
	conn, err := grpc.NewClient(address, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("hourglass: dial %s: %w", address, err)
	}
	return &Client{JobServiceClient: hourglassv1.NewJobServiceClient(conn), conn: conn}, nil
}

// Close closes the connection; calls in flight end with CANCELED.
func (c *Client) Close() error {
	return c.conn.Close()
}
