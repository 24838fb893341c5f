package mailconn

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate"
)

func TestXOAUTH2InitialResponse(t *testing.T) {
	c := NewOAuth2Client(MechXOAuth2, "alice@example.com", "ya29.tok-en", "imap.example.com:993")
	mech, ir, err := c.Start()
	if err != nil || mech != "XOAUTH2" {
		t.Fatalf("Start = %q, %v", mech, err)
	}
	want := "user=alice@example.com\x01auth=Bearer ya29.tok-en\x01\x01"
	if string(ir) != want {
		t.Errorf("initial response %q, want %q", ir, want)
	}
	// The base64 form Google documents for user=someuser@example.com and
	// token ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg.
	got := SASLLine(XOAuth2Response("someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"))
	const google = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
	if got != google {
		t.Errorf("base64 %s, want %s", got, google)
	}
	if r := c.AbortResponse(); len(r) != 0 {
		t.Errorf("XOAUTH2 answers an error challenge with %q, want an empty line", r)
	}
}

func TestOAuthBearerInitialResponse(t *testing.T) {
	c := NewOAuth2Client(MechOAuthBearer, "alice", "tok", "mail.example.com:143")
	mech, ir, _ := c.Start()
	want := "n,a=alice,\x01host=mail.example.com\x01port=143\x01auth=Bearer tok\x01\x01"
	if mech != "OAUTHBEARER" || string(ir) != want {
		t.Errorf("Start = %s %q, want OAUTHBEARER %q", mech, ir, want)
	}
	if r := c.AbortResponse(); string(r) != "\x01" {
		t.Errorf("OAUTHBEARER answers an error challenge with %q, want %%x01", r)
	}
}

func TestOAuth2RefusalChallenge(t *testing.T) {
	c := NewOAuth2Client(MechXOAuth2, "alice", "secret-token", "h:1")
	resp, err := c.Next([]byte(`{"status":"401","schemes":"bearer","scope":"mail"}`))
	var r *Refusal
	if resp != nil || !errors.As(err, &r) || r.status != "401" {
		t.Fatalf("Next = %q, %v", resp, err)
	}
	e := Refused(ServerConfig{Addr: "h:1", User: "alice"}, &Refusal{mech: MechXOAuth2, status: "400", text: "NO bad token secret-token\x1b[2J"}, "secret-token")
	if !errors.Is(e, migrate.ErrAuth) || strings.Contains(e.Error(), "secret-token") || strings.ContainsRune(e.Error(), 0x1b) {
		t.Errorf("refusal error %q", e)
	}
	if !strings.Contains(e.Error(), "status 400") || !strings.Contains(e.Error(), "XOAUTH2") {
		t.Errorf("refusal error %q does not say what was refused", e)
	}
	// Not JSON: no status, no echo.
	c.Next([]byte("garbage"))
	if c.Refusal().status != "" {
		t.Errorf("status %q from a non-JSON challenge", c.Refusal().status)
	}
}

func TestChooseOAuth2(t *testing.T) {
	offers := func(ms ...string) func(string) bool {
		return func(m string) bool {
			for _, x := range ms {
				if x == m {
					return true
				}
			}
			return false
		}
	}
	cfg := ServerConfig{Addr: "h:1", User: "u"}
	for _, tc := range []struct {
		forced string
		offer  []string
		want   string
		err    error
	}{
		{"", []string{"PLAIN", "XOAUTH2", "OAUTHBEARER"}, MechOAuthBearer, nil},
		{"", []string{"XOAUTH2"}, MechXOAuth2, nil},
		{"", []string{"OAUTHBEARER"}, MechOAuthBearer, nil},
		{"", []string{"PLAIN", "LOGIN"}, "", migrate.ErrAuth},
		{"xoauth2", []string{"XOAUTH2", "OAUTHBEARER"}, MechXOAuth2, nil},
		{"XOAUTH2", []string{"OAUTHBEARER"}, "", migrate.ErrAuth},
		{"PLAIN", []string{"PLAIN"}, "", migrate.ErrUsage},
	} {
		cfg.OAuth2Mechanism = tc.forced
		got, err := ChooseOAuth2(cfg, offers(tc.offer...), tc.offer)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("forced %q, offered %v: got %q, %v; want %q, %v", tc.forced, tc.offer, got, err, tc.want, tc.err)
		}
	}
}

func TestTokenChecks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		tok  string
		err  error
		want string
	}{
		{"  tok  ", nil, "tok"},
		{"", nil, ""},
		{"a\x01b", nil, ""},
		{"", errors.New("exit status 3"), ""},
	} {
		cfg := ServerConfig{Addr: "h:1", User: "u", Token: func(context.Context) (string, error) { return tc.tok, tc.err }}
		got, err := cfg.FreshToken(ctx)
		if got != tc.want || (tc.want == "") != errors.Is(err, migrate.ErrAuth) {
			t.Errorf("token %q, %v: got %q, %v", tc.tok, tc.err, got, err)
		}
		if err != nil && strings.Contains(err.Error(), "\x01") {
			t.Errorf("the error shows the token: %q", err)
		}
	}
}
