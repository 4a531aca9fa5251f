package hourglass

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Option configures Dial.
type Option func(*config) error

type config struct {
	token                     string
	caFile, certFile, keyFile string
	retry                     RetryPolicy
	dialOptions               []grpc.DialOption
}

func defaults() config {
	return config{retry: DefaultRetry}
}

// WithToken sends token as "authorization: Bearer <token>" on every call (unless the call's
// context carries its own: ContextWithToken).
func WithToken(token string) Option {
	return func(c *config) error {
		c.token = token
		return nil
	}
}

// WithTLS connects over TLS, trusting the CA certificate (PEM) in caFile; with certFile and
// keyFile, it presents that client certificate (mutual TLS). Without this option the
// connection is plaintext, as for a coordinator on loopback.
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(c *config) error {
		if caFile == "" {
			return errors.New("hourglass: WithTLS needs a CA file")
		}
		if (certFile == "") != (keyFile == "") {
			return errors.New("hourglass: WithTLS needs both a client certificate and its key, or neither")
		}
		c.caFile, c.certFile, c.keyFile = caFile, certFile, keyFile
		return nil
	}
}

// FromEnv reads the variables the CLI and the Python SDK read: HOURGLASS_TOKEN, and
// HOURGLASS_TLS_CA_FILE, HOURGLASS_TLS_CLIENT_CERT_FILE, HOURGLASS_TLS_CLIENT_KEY_FILE
// (TLS when the CA is set). Options after it override what it set.
func FromEnv() Option {
	return func(c *config) error {
		if token := os.Getenv("HOURGLASS_TOKEN"); token != "" {
			c.token = token
		}
		if ca := os.Getenv("HOURGLASS_TLS_CA_FILE"); ca != "" {
			return WithTLS(ca, os.Getenv("HOURGLASS_TLS_CLIENT_CERT_FILE"), os.Getenv("HOURGLASS_TLS_CLIENT_KEY_FILE"))(c)
		}
		return nil
	}
}

// WithRetry replaces DefaultRetry; RetryPolicy{MaxAttempts: 1} turns retries off.
func WithRetry(policy RetryPolicy) Option {
	return func(c *config) error {
		if err := policy.validate(); err != nil {
			return err
		}
		c.retry = policy
		return nil
	}
}

// WithDialOptions adds gRPC dial options (e.g. a user agent, keepalive, interceptors).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) error {
		c.dialOptions = append(c.dialOptions, opts...)
		return nil
	}
}

func (c *config) transportCredentials() (credentials.TransportCredentials, error) {
	if c.caFile == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		return nil, fmt.Errorf("hourglass: TLS CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("hourglass: TLS CA: no PEM certificate in %s", c.caFile)
	}
	conf := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if c.certFile != "" {
		pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("hourglass: TLS client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(conf), nil
}
