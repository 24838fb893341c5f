package imap

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/pop3"
)

func TestNamespacePrefixPaths(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		delim  rune
		want   string
	}{
		{"", '.', ""}, {"INBOX.", '.', "INBOX."}, {"inbox.", '.', "INBOX."}, {"INBOX", '.', "INBOX."},
		{"INBOX/", '/', "INBOX/"}, {"Mail/", '/', "Mail/"}, {"#mh/", '/', "#mh/"}, {"INBOX.", 0, ""}, {".", '.', ""},
	} {
		if got := personalPrefix(tc.prefix, tc.delim); got != tc.want {
			t.Errorf("personalPrefix(%q, %q) = %q, want %q", tc.prefix, tc.delim, got, tc.want)
		}
	}
	m := &IMAP{delim: '.', nsPrefix: "INBOX."}
	for _, tc := range []struct {
		name string
		path string
	}{
		{"INBOX", "INBOX"}, {"inbox", "INBOX"}, {"INBOX.Sent", "Sent"}, {"Inbox.Sent", "Sent"},
		{"INBOX.Archive.2023", "Archive/2023"}, {"INBOX.INBOX.Sub", "INBOX/Sub"},
		{"INBOX.INBOX", "INBOX/INBOX"}, // not INBOX itself
		{"shared.bob", "shared/bob"},   // another namespace keeps its name
	} {
		if got := formats.DisplayName(m.pathOf(tc.name, '.')); got != tc.path {
			t.Errorf("pathOf(%q) = %q, want %q", tc.name, got, tc.path)
		}
	}
	for _, tc := range []struct {
		path []string
		name string
	}{
		{[]string{"INBOX"}, "INBOX"}, {[]string{"inbox"}, "INBOX"}, {[]string{"Sent"}, "INBOX.Sent"},
		{[]string{"Archive", "2023"}, "INBOX.Archive.2023"}, {[]string{"INBOX", "Sub"}, "INBOX.INBOX.Sub"},
		{[]string{"a.b"}, "INBOX.a_b"},
	} {
		if got := m.FolderName(tc.path); got != tc.name {
			t.Errorf("nameOf(%q) = %q, want %q", tc.path, got, tc.name)
		}
		want := formats.DisplayName(formats.SplitFolder(strings.Join(tc.path, "/"), '/'))
		if got := formats.DisplayName(m.pathOf(tc.name, '.')); !strings.Contains(tc.name, "_") && got != want {
			t.Errorf("pathOf(nameOf(%q)) = %q: no round trip", tc.path, got)
		}
	}
}

// oauthServer is a Dovecot whose users log in with tokens from o.
func oauthServer(t *testing.T, opts dovecottest.Options) (*dovecottest.Server, *dovecottest.OAuth2Server) {
	t.Helper()
	o := dovecottest.StartOAuth2(t)
	opts.OAuth2IntrospectionURL = o.URL
	return dovecottest.Start(t, opts), o
}

// countingToken returns tokens from toks in turn (the last one again when
// they run out) and counts the calls.
func countingToken(calls *atomic.Int32, toks ...string) mailconn.TokenFunc {
	return func(context.Context) (string, error) {
		n := int(calls.Add(1))
		return toks[min(n, len(toks))-1], nil
	}
}

func TestOAuth2LoginsOnDovecot(t *testing.T) {
	srv, o := oauthServer(t, dovecottest.Options{})
	o.Grant("good-token", "alice")
	long := "long-" + strings.Repeat("x", 1500) // Microsoft's tokens are this long
	o.Grant(long, "alice")
	o.Grant("bobs-token", "bob")
	ctx := context.Background()
	base := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", TLS: mailconn.TLSNone, Timeout: 10 * time.Second}

	for _, mech := range []string{"", mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		for _, tok := range []string{"good-token", long} {
			t.Run(fmt.Sprintf("imap-%s-%d", mech, len(tok)), func(t *testing.T) {
				var calls atomic.Int32
				cfg := base
				cfg.OAuth2Mechanism = mech
				cfg.Token = countingToken(&calls, tok)
				m, err := DialIMAP(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if want := cmp.Or(mech, mailconn.MechOAuthBearer); m.auth.mech != want || !m.auth.saslIR {
					t.Errorf("logged in with %+v, want %s with SASL-IR", m.auth, want)
				}
				// The MULTIAPPEND connection logs in the same way, with a
				// token of its own, with the initial response on the
				// command line or after the server's "+".
				for _, ir := range []bool{true, false} {
					auth := m.auth
					auth.saslIR = ir
					a, err := dialAppender(ctx, cfg, auth)
					if err != nil {
						t.Fatalf("appender (SASL-IR %v): %v", ir, err)
					}
					if err := a.add("INBOX", nil, time.Now(), []byte("Subject: x\r\n\r\nx\r\n")); err != nil {
						t.Fatal(err)
					}
					outs, err := a.commit()
					if err != nil || len(outs) != 1 || outs[0].err != nil || outs[0].uid == 0 {
						t.Fatalf("append over the OAuth2 connection: %v %+v", err, outs)
					}
					a.close()
				}
				if n := calls.Load(); n != 3 {
					t.Errorf("the token was asked for %d times for three connections", n)
				}
			})
		}
	}

	for _, mech := range []string{"", mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
		for _, tok := range []string{"good-token", long} {
			t.Run(fmt.Sprintf("pop3-%s-%d", mech, len(tok)), func(t *testing.T) {
				var calls atomic.Int32
				cfg := base
				cfg.Addr = srv.POP3Addr()
				cfg.OAuth2Mechanism = mech
				cfg.Token = countingToken(&calls, tok)
				p, err := pop3.DialPOP3(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Folders(ctx); err != nil {
					t.Error(err)
				}
				if err := p.Close(); err != nil {
					t.Error(err)
				}
				if calls.Load() != 1 {
					t.Errorf("%d token calls", calls.Load())
				}
			})
		}
	}

	// A refused token: the login is tried once more with a new token, then
	// fails with migrate.ErrAuth, naming neither token. Bob's token is not Alice's.
	for _, proto := range []string{"imap", "pop3", "appender"} {
		for _, mech := range []string{mailconn.MechXOAuth2, mailconn.MechOAuthBearer} {
			t.Run("refused-"+proto+"-"+mech, func(t *testing.T) {
				var calls atomic.Int32
				cfg := base
				cfg.OAuth2Mechanism = mech
				cfg.Token = countingToken(&calls, "wrong-token-1", "bobs-token")
				var err error
				switch proto {
				case "imap":
					_, err = DialIMAP(ctx, cfg)
				case "pop3":
					cfg.Addr = srv.POP3Addr()
					_, err = pop3.DialPOP3(ctx, cfg)
				case "appender":
					_, err = dialAppender(ctx, cfg, imapAuth{mech: mech, saslIR: true})
				}
				if !errors.Is(err, migrate.ErrAuth) || migrate.IsRetryable(err) {
					t.Fatalf("got %v, want a final ErrAuth", err)
				}
				msg := err.Error()
				if strings.Contains(msg, "wrong-token") || strings.Contains(msg, "bobs-token") || !strings.Contains(msg, "refused") {
					t.Errorf("error %q", msg)
				}
				if calls.Load() != 2 {
					t.Errorf("the token was asked for %d times, want 2 (once more after the refusal)", calls.Load())
				}
			})
		}
	}

	// An expired token (the introspection answers "not active" once): the
	// second token, asked for after the refusal, logs in.
	t.Run("expired-once", func(t *testing.T) {
		var calls atomic.Int32
		o.Grant("fresh-1", "alice")
		o.Grant("fresh-2", "alice")
		o.ExpireNext("fresh-1", 1)
		cfg := base
		cfg.Token = countingToken(&calls, "fresh-1", "fresh-2")
		m, err := DialIMAP(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Close()
		if calls.Load() != 2 {
			t.Errorf("%d token calls, want 2", calls.Load())
		}
	})

	// A token command that fails: migrate.ErrAuth at once, no retry.
	t.Run("command-fails", func(t *testing.T) {
		var calls atomic.Int32
		cfg := base
		cfg.Token = func(context.Context) (string, error) {
			calls.Add(1)
			return "", errors.New("--src-oauth2-token-cmd failed: exit status 7")
		}
		_, err := DialIMAP(ctx, cfg)
		if !errors.Is(err, migrate.ErrAuth) || migrate.IsRetryable(err) || !strings.Contains(err.Error(), "exit status 7") || calls.Load() != 1 {
			t.Errorf("got %v after %d calls", err, calls.Load())
		}
	})
}

func TestOAuth2NotOffered(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{})
	cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", TLS: mailconn.TLSNone, Token: func(context.Context) (string, error) { return "t", nil }}
	_, err := DialIMAP(context.Background(), cfg)
	if !errors.Is(err, migrate.ErrAuth) || !strings.Contains(err.Error(), "no OAuth2") {
		t.Errorf("IMAP: %v", err)
	}
	cfg.Addr = srv.POP3Addr()
	_, err = pop3.DialPOP3(context.Background(), cfg)
	if !errors.Is(err, migrate.ErrAuth) || !strings.Contains(err.Error(), "no OAuth2") {
		t.Errorf("POP3: %v", err)
	}
}

func TestNamespacePrefixOnDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '.', NamespacePrefix: "INBOX.", SpecialUse: true})
	srv.Seed(t, "alice", []dovecottest.SeedMessage{
		{Folder: "INBOX", Body: []byte("Subject: a\r\n\r\na\r\n")},
		{Folder: "INBOX.Archive.2023", Body: []byte("Subject: b\r\n\r\nb\r\n")},
	})
	ctx := context.Background()
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.nsPrefix != "INBOX." || m.Separator() != '.' {
		t.Fatalf("prefix %q, separator %q", m.nsPrefix, m.Separator())
	}
	for _, p := range [][]string{{"Lists", "dev"}, {"INBOX", "Sub"}, {"Sent"}} {
		f, err := m.Ensure(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if want := "INBOX." + strings.Join(p, "."); f.Name != want || formats.DisplayName(f.Path) != formats.DisplayName(p) {
			t.Errorf("Ensure(%q) = %q %q, want %q", p, f.Name, f.Path, want)
		}
	}
	folders, err := m.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range folders {
		if !f.NoSelect {
			got[formats.DisplayName(f.Path)] = f.Name
		}
	}
	want := map[string]string{
		"INBOX": "INBOX", "Archive/2023": "INBOX.Archive.2023", "Lists/dev": "INBOX.Lists.dev", "INBOX/Sub": "INBOX.INBOX.Sub",
		"Sent": "INBOX.Sent", "Drafts": "INBOX.Drafts", "Trash": "INBOX.Trash", "Junk": "INBOX.Junk",
	}
	for p, n := range want {
		if got[p] != n {
			t.Errorf("path %q: folder %q, want %q (all: %v)", p, got[p], n, got)
		}
	}
	for _, f := range folders {
		if f.SpecialUse == `\Sent` && formats.DisplayName(f.Path) != "Sent" {
			t.Errorf("\\Sent has path %q", f.Path)
		}
		if formats.IsInbox(f.Path) && f.Name != "INBOX" {
			t.Errorf("%q taken for INBOX", f.Name)
		}
	}
}

// OAuth2 after STARTTLS/STLS and over implicit TLS: the mechanisms are
// those offered once the connection is protected.
func TestOAuth2OverTLS(t *testing.T) {
	srv, o := oauthServer(t, dovecottest.Options{TLS: true})
	o.Grant("tls-token", "alice")
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		addr string
		mode mailconn.TLSMode
		pop  bool
	}{
		{"imap-starttls", srv.IMAPAddr(), mailconn.TLSStartTLS, false},
		{"imaps", srv.IMAPSAddr(), mailconn.TLSImplicit, false},
		{"pop3-stls", srv.POP3Addr(), mailconn.TLSStartTLS, true},
		{"pop3s", srv.POP3SAddr(), mailconn.TLSImplicit, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			cfg := mailconn.ServerConfig{Addr: tc.addr, User: "alice", TLS: tc.mode, Timeout: 10 * time.Second,
				TLSConfig: &tls.Config{RootCAs: srv.RootCAs()}, Token: countingToken(&calls, "tls-token")}
			if tc.pop {
				p, err := pop3.DialPOP3(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				p.Close()
				return
			}
			m, err := DialIMAP(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			f, err := m.Ensure(ctx, []string{"INBOX"})
			if err != nil {
				t.Fatal(err)
			}
			body := []byte("Subject: over TLS\r\n\r\nx\r\n")
			if _, err := m.Store(ctx, f, formats.Message{Date: time.Now()}, int64(len(body)), bytes.NewReader(body)); err != nil && !errors.Is(err, migrate.ErrQueued) {
				t.Fatal(err)
			}
			if res, err := m.Commit(ctx); err != nil || len(res) != 1 || res[0].Err != nil {
				t.Fatalf("commit over the TLS MULTIAPPEND connection: %v %+v", err, res)
			}
			if calls.Load() != 2 {
				t.Errorf("%d token calls for two connections", calls.Load())
			}
		})
	}
}
