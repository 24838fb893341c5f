package mailconn

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

	"github.com/emersion/go-sasl"

	"github.com/mailferry/mailferry/migrate"
)

// The OAuth2 SASL mechanisms.
const (
	MechOAuthBearer = "OAUTHBEARER" // RFC 7628
	MechXOAuth2     = "XOAUTH2"     // Google, Microsoft
)

// TokenFunc returns a current OAuth2 access token.
type TokenFunc func(ctx context.Context) (string, error)

// XOAuth2Response is the XOAUTH2 initial client response:
// "user=" user ^A "auth=Bearer " token ^A ^A.
func XOAuth2Response(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// OAuth2Client is a sasl.Client for XOAUTH2 and OAUTHBEARER. The only
// challenge either mechanism sends is the server's refusal (a JSON object
// with a status); Next records it and stops the exchange, so that the caller
// closes the connection and tells the user.
type OAuth2Client struct {
	mech    string
	ir      []byte
	refusal *Refusal // set by Next
}

var _ sasl.Client = (*OAuth2Client)(nil)

// NewOAuth2Client makes the client for mech, logging user in with token at
// addr (host:port, which OAUTHBEARER names).
func NewOAuth2Client(mech, user, token, addr string) *OAuth2Client {
	c := &OAuth2Client{mech: mech}
	switch mech {
	case MechXOAuth2:
		c.ir = XOAuth2Response(user, token)
	default:
		host, portStr, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(portStr)
		_, c.ir, _ = sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{
			Username: user, Token: token, Host: host, Port: port,
		}).Start()
	}
	return c
}

func (c *OAuth2Client) Start() (string, []byte, error) { return c.mech, c.ir, nil }

// Next takes the server's error challenge. imapclient cannot send the empty
// line XOAUTH2 expects after it, so the exchange ends here for both
// mechanisms; the raw connections send AbortResponse instead.
func (c *OAuth2Client) Next(challenge []byte) ([]byte, error) {
	c.refusal = ParseRefusal(c.mech, challenge)
	return nil, c.refusal
}

// AbortResponse is the client's answer to an error challenge: an empty line
// for XOAUTH2, %x01 for OAUTHBEARER (RFC 7628, 3.2.3).
func (c *OAuth2Client) AbortResponse() []byte {
	if c.mech == MechXOAuth2 {
		return nil
	}
	return []byte{0x01}
}

// Refusal returns the server's refusal that Next recorded, or nil.
func (c *OAuth2Client) Refusal() *Refusal { return c.refusal }

// WithText is the refusal with the server's final words text.
func (e *Refusal) WithText(text string) *Refusal {
	r := *e
	r.text = text
	return &r
}

// NewRefusal is a refusal the server said in a plain status line.
func NewRefusal(mech, text string) *Refusal { return &Refusal{mech: mech, text: text} }

// Refusal is the server refusing a token, with what it said (its
// error status, or the text of its NO). It never holds the token.
type Refusal struct {
	mech   string
	status string // from the JSON challenge ("401", "invalid_token"), may be empty
	text   string // the server's final answer, may be empty
}

func (e *Refusal) Error() string {
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

// ParseRefusal reads {"status": ..., "schemes": ..., "scope": ...}.
func ParseRefusal(mech string, challenge []byte) *Refusal {
	var j struct {
		Status string `json:"status"`
	}
	r := &Refusal{mech: mech}
	if json.Unmarshal(challenge, &j) == nil {
		r.status = Printable(j.Status, 40)
	}
	return r
}

// Printable keeps s for an error message: printable characters only, cut
// to max runes.
func Printable(s string, max int) string {
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

// ChooseOAuth2 picks the mechanism; offered reports the server's
// AUTH=/SASL mechanisms, all reports them for the error message.
func ChooseOAuth2(cfg ServerConfig, offered func(mech string) bool, all []string) (string, error) {
	if m := strings.ToUpper(cfg.OAuth2Mechanism); m != "" {
		if m != MechXOAuth2 && m != MechOAuthBearer {
			return "", fmt.Errorf("%w: OAuth2 mechanism %q (XOAUTH2 or OAUTHBEARER)", migrate.ErrUsage, cfg.OAuth2Mechanism)
		}
		if !offered(m) {
			return "", fmt.Errorf("%w: %s: the server does not offer %s (it offers: %s)", migrate.ErrAuth, cfg, m, offeredList(all))
		}
		return m, nil
	}
	for _, m := range []string{MechOAuthBearer, MechXOAuth2} {
		if offered(m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("%w: %s: the server offers no OAuth2 login (neither XOAUTH2 nor OAUTHBEARER; it offers: %s)", migrate.ErrAuth, cfg, offeredList(all))
}

func offeredList(all []string) string {
	if len(all) == 0 {
		return "nothing"
	}
	return Printable(strings.Join(all, " "), 200)
}

// token calls cfg.Token and checks what it gives.
func (cfg ServerConfig) FreshToken(ctx context.Context) (string, error) {
	tok, err := cfg.Token(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%w: %s: no OAuth2 token: %v", migrate.ErrAuth, cfg, err)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("%w: %s: no OAuth2 token: the token command printed an empty line", migrate.ErrAuth, cfg)
	}
	for _, r := range tok {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: %s: the OAuth2 token holds control characters", migrate.ErrAuth, cfg)
		}
	}
	return tok, nil
}

// WithToken runs dial with a token from cfg.Token; when the server refuses
// it, it gets a new token and dials once more.
func WithToken[T any](ctx context.Context, cfg ServerConfig, dial func(token string) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		tok, err := cfg.FreshToken(ctx)
		if err != nil {
			return zero, err
		}
		v, err := dial(tok)
		var ref *Refusal
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

// Refused wraps a refusal as the authentication failure it is.
func Refused(cfg ServerConfig, r *Refusal, token string) error {
	r.text = RedactToken(Printable(r.text, 200), token)
	return fmt.Errorf("%w: %s: %w", migrate.ErrAuth, cfg, r)
}

func RedactToken(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "***")
	}
	return s
}

// SASLLine encodes a SASL response for a line of IMAP or POP3 (an empty
// response is an empty line).
func SASLLine(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
