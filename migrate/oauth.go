package migrate

// OAuth2 logins: SASL XOAUTH2 (Google's and Microsoft's mechanism, which
// go-sasl does not have) and OAUTHBEARER (RFC 7628), for IMAP (through
// imapclient and through the raw MULTIAPPEND connection) and POP3.
//
// The rules, the same for every connection:
//
//   - The token comes from ServerConfig.Token, called once for every new
//     connection (so a reconnect always gets a fresh token) and never
//     logged, formatted into an error, or kept after the login.
//   - The mechanism is ServerConfig.OAuth2Mechanism when set, else what the
//     server offers, OAUTHBEARER before XOAUTH2: OAUTHBEARER is the
//     standard one (RFC 7628, with a defined way to fail), and XOAUTH2 is
//     what servers that offer only one of the two (Microsoft 365) offer.
//   - When the server refuses the token (it expired between the command
//     and the login, or was revoked), the login is tried once more with a
//     new token from Token, on a new connection: a refused or broken SASL
//     exchange is never continued on the same connection.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// The OAuth2 SASL mechanisms.
const (
	MechOAuthBearer = "OAUTHBEARER" // RFC 7628
	MechXOAuth2     = "XOAUTH2"     // Google, Microsoft
)

// TokenFunc returns a current OAuth2 access token.
type TokenFunc func(ctx context.Context) (string, error)

// xoauth2Response is the XOAUTH2 initial client response:
// "user=" user ^A "auth=Bearer " token ^A ^A.
func xoauth2Response(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// oauth2Client is a sasl.Client for XOAUTH2 and OAUTHBEARER. The only
// challenge either mechanism sends is the server's refusal (a JSON object
// with a status); Next records it and stops the exchange, so that the caller
// closes the connection and tells the user.
type oauth2Client struct {
	mech    string
	ir      []byte
	refusal *oauth2Refusal // set by Next
}

var _ sasl.Client = (*oauth2Client)(nil)

// newOAuth2Client makes the client for mech, logging user in with token at
// addr (host:port, which OAUTHBEARER names).
func newOAuth2Client(mech, user, token, addr string) *oauth2Client {
	c := &oauth2Client{mech: mech}
	switch mech {
	case MechXOAuth2:
		c.ir = xoauth2Response(user, token)
	default:
		host, portStr, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(portStr)
		_, c.ir, _ = sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: user, Token: token, Host: host, Port: port,
		}).Start()
	}
	return c
}

func (c *oauth2Client) Start() (string, []byte, error) { return c.mech, c.ir, nil }

// Next takes the server's error challenge. imapclient cannot send the empty
// line XOAUTH2 expects after it, so the exchange ends here for both
// mechanisms; the raw connections send abortResponse instead.
func (c *oauth2Client) Next(challenge []byte) ([]byte, error) {
	c.refusal = parseRefusal(c.mech, challenge)
	return nil, c.refusal
}

// abortResponse is the client's answer to an error challenge: an empty line
// for XOAUTH2, %x01 for OAUTHBEARER (RFC 7628, 3.2.3).
func (c *oauth2Client) abortResponse() []byte {
	if c.mech == MechXOAuth2 {
		return nil
	}
	return []byte{0x01}
}

// oauth2Refusal is the server refusing a token, with what it said (its
// error status, or the text of its NO). It never holds the token.
type oauth2Refusal struct {
	mech   string
	status string // from the JSON challenge ("401", "invalid_token"), may be empty
	text   string // the server's final answer, may be empty
}

func (e *oauth2Refusal) Error() string {
	msg := "OAuth2 token refused (" + e.mech
	if e.status != "" {
		msg += ", status " + e.status
	}
	msg += ")"
	if e.text != "" {
		msg += ": " + e.text
	}
	return msg
}

// parseRefusal reads {"status": ..., "schemes": ..., "scope": ...}.
func parseRefusal(mech string, challenge []byte) *oauth2Refusal {
	var j struct {
		Status string `json:"status"`
	}
	r := &oauth2Refusal{mech: mech}
	if json.Unmarshal(challenge, &j) == nil {
		r.status = printable(j.Status, 40)
	}
	return r
}

// printable keeps s for an error message: printable characters only, cut
// to max runes.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("...")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}

// chooseOAuth2 picks the mechanism; offered reports the server's
// AUTH=/SASL mechanisms, all reports them for the error message.
func chooseOAuth2(cfg ServerConfig, offered func(mech string) bool, all []string) (string, error) {
	if m := strings.ToUpper(cfg.OAuth2Mechanism); m != "" {
		if m != MechXOAuth2 && m != MechOAuthBearer {
			return "", fmt.Errorf("%w: OAuth2 mechanism %q (XOAUTH2 or OAUTHBEARER)", ErrUsage, cfg.OAuth2Mechanism)
		}
		if !offered(m) {
			return "", fmt.Errorf("%w: %s: the server does not offer %s (it offers: %s)", ErrAuth, cfg, m, offeredList(all))
		}
		return m, nil
	}
	for _, m := range []string{MechOAuthBearer, MechXOAuth2} {
		if offered(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: %s: the server offers no OAuth2 login (neither XOAUTH2 nor OAUTHBEARER; it offers: %s)", ErrAuth, cfg, offeredList(all))
}

func offeredList(all []string) string {
	if len(all) == 0 {
		return "nothing"
	}
	return printable(strings.Join(all, " "), 200)
}

// token calls cfg.Token and checks what it gives.
func (cfg ServerConfig) token(ctx context.Context) (string, error) {
	tok, err := cfg.Token(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: %s: no OAuth2 token: %v", ErrAuth, cfg, err)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%w: %s: no OAuth2 token: the token command printed an empty line", ErrAuth, cfg)
	}
	for _, r := range tok {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: %s: the OAuth2 token holds control characters", ErrAuth, cfg)
		}
	}
	return tok, nil
}

// withToken runs dial with a token from cfg.Token; when the server refuses
// it, it gets a new token and dials once more.
func withToken[T any](ctx context.Context, cfg ServerConfig, dial func(token string) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		tok, err := cfg.token(ctx)
		if err != nil {
			return zero, err
		}
		v, err := dial(tok)
		var ref *oauth2Refusal
		if err == nil || !errors.As(err, &ref) {
			return v, err
		}
		if attempt > 0 {
			return zero, fmt.Errorf("%w (a fresh token was refused too)", err)
		}
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
	}
}

// refused wraps a refusal as the authentication failure it is.
func refused(cfg ServerConfig, r *oauth2Refusal, token string) error {
	r.text = redactToken(printable(r.text, 200), token)
	return fmt.Errorf("%w: %s: %w", ErrAuth, cfg, r)
}

func redactToken(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "***")
	}
	return s
}

// imapAuth is how a connection to the server logged in, for the raw
// MULTIAPPEND connection to do the same.
type imapAuth struct {
	mech   string // "" for LOGIN
	saslIR bool   // the server takes an initial response with AUTHENTICATE
}

// authenticateIMAP logs c in with token. On any error the caller closes c.
func authenticateIMAP(c *imapclient.Client, cfg ServerConfig, token string) (imapAuth, error) {
	caps := c.Caps()
	mech, err := chooseOAuth2(cfg, func(m string) bool { return caps.Has(imap.AuthCap(m)) }, caps.AuthMechanisms())
	if err != nil {
		return imapAuth{}, err
	}
	auth := imapAuth{mech: mech, saslIR: caps.Has(imap.CapSASLIR)}
	cl := newOAuth2Client(mech, cfg.User, token, cfg.Addr)
	err = c.Authenticate(cl)
	var ie *imap.Error
	switch {
	case err == nil:
		return auth, nil
	case cl.refusal != nil:
		return auth, refused(cfg, cl.refusal, token)
	case errors.As(err, &ie):
		if ie.Code == imap.ResponseCodeUnavailable {
			return auth, &RetryableError{Err: fmt.Errorf("imap: %s: login refused for now: %s", cfg, redactToken(ie.Text, token))}
		}
		return auth, refused(cfg, &oauth2Refusal{mech: mech, text: ie.Text}, token)
	}
	return auth, &RetryableError{Err: fmt.Errorf("imap: %s: authenticate: %s", cfg, redactToken(err.Error(), token))}
}

// saslLine encodes a SASL response for a line of IMAP or POP3 (an empty
// response is an empty line).
func saslLine(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
