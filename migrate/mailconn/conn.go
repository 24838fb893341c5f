// Package mailconn holds what the IMAP and POP3 clients share: the server
// configuration (address, user, secrets, TLS mode), the TLS settings of a
// connection, OAuth2 SASL (XOAUTH2, OAUTHBEARER and the token rules), and
// the classification of a failure to connect into the engine's error kinds
// (migrate.ErrTLS and ErrAuth are fatal, anything else is a lost connection
// to retry).
package mailconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/mailferry/mailferry/migrate"
)

// TLSMode says how a connection is protected.
type TLSMode string

// The three TLS modes of --src-tls and --dst-tls.
const (
	TLSImplicit TLSMode = "tls"      // TLS from the first byte (imaps, pop3s)
	TLSStartTLS TLSMode = "starttls" // plaintext greeting, then STARTTLS/STLS before login
	TLSNone     TLSMode = "none"     // plaintext all the way: only when asked for
)

// ServerConfig is what it takes to reach and log in to an IMAP or POP3 server.
// Password is held only in memory and never formatted into any message.
type ServerConfig struct {
	Addr      string // host:port
	User      string
	Password  string
	TLS       TLSMode
	TLSConfig *tls.Config // verification on unless the user asked otherwise
	Timeout   time.Duration

	// Token, when set, logs in with OAuth2 instead of Password: IMAP
	// AUTHENTICATE and POP3 AUTH with OAUTHBEARER or XOAUTH2 (oauth.go).
	// It is called for every new connection, and once more when the server
	// refuses the token (expired); the token is never logged.
	Token TokenFunc
	// OAuth2Mechanism forces MechXOAuth2 or MechOAuthBearer; empty picks
	// what the server offers, OAUTHBEARER first.
	OAuth2Mechanism string
}

// String names the server without any secret, for messages and reports.
func (c ServerConfig) String() string {
	if c.User == "" {
		return c.Addr
	}
	return c.User + "@" + c.Addr
}

// TLSConfig returns a copy of the configured TLS settings for one
// connection, naming the server's host (for certificate checks) when the
// settings do not, and offering ALPN protocol proto when not empty.
func (c ServerConfig) TLSClientConfig(proto string) *tls.Config {
	tc := c.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(c.Addr)
	}
	if proto != "" && tc.NextProtos == nil {
		tc.NextProtos = []string{proto}
	}
	return tc
}

// ErrNoStartTLS: the server does not offer STARTTLS (or STLS).
var ErrNoStartTLS = errors.New("no STARTTLS")

// ErrProtocol: the server does not speak the protocol as expected (not a
// mail server on that port, say): retrying will not help.
var ErrProtocol = errors.New("unexpected response")

// ClassifyDialError sorts a failure before login (proto "imap" or "pop3",
// what the step that failed): certificate, host name and TLS record
// problems and a missing STARTTLS are migrate.ErrTLS (fatal), a server not
// speaking the protocol is fatal too, anything else is a lost connection
// (migrate.RetryableError).
func ClassifyDialError(proto string, cfg ServerConfig, what string, err error) error {
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var recErr tls.RecordHeaderError
	var alert tls.AlertError
	where := cfg.Addr
	if what != "" {
		where += ": " + what
	}
	switch {
	case errors.As(err, &authErr):
		return fmt.Errorf("%w: %s: %v (a private CA can be trusted with --ca-file)", migrate.ErrTLS, where, strings.TrimPrefix(err.Error(), "tls: "))
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &recErr), errors.As(err, &alert):
		return fmt.Errorf("%w: %s: %v", migrate.ErrTLS, where, strings.TrimPrefix(err.Error(), "tls: "))
	case errors.Is(err, ErrNoStartTLS):
		return fmt.Errorf("%w: %s: the server does not offer STARTTLS; refusing to log in without TLS (use --src-tls/--dst-tls none only on a trusted network)", migrate.ErrTLS, cfg.Addr)
	case errors.Is(err, ErrProtocol):
		return fmt.Errorf("%s: %s: %w", proto, where, err)
	}
	return &migrate.RetryableError{Err: fmt.Errorf("%s: %s: %w", proto, where, err)}
}
