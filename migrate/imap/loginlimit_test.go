package imap

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A login refused with [LIMIT] (Dovecot beyond mail_max_userip_connections)
// is migrate.ErrTooManyConnections and retryable, not migrate.ErrAuth; and
// a sink whose APPEND connection is refused so stores on its main
// connection instead, byte for byte.
func TestLoginLimitIsNotARefusedPassword(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/', MaxUserIPConnections: 2})
	cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone, Timeout: 20 * time.Second}
	ctx := context.Background()
	m, err := DialIMAP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.noBatch {
		t.Fatal("Dovecot has MULTIAPPEND and LITERAL+: the sink should batch")
	}
	held := srv.Client(t, "alice") // the second and last session the server allows
	_, err = DialIMAP(ctx, cfg)
	if !errors.Is(err, migrate.ErrTooManyConnections) || !migrate.IsRetryable(err) || errors.Is(err, migrate.ErrAuth) {
		t.Fatalf("a third login: %v; want a retryable ErrTooManyConnections, not ErrAuth", err)
	}

	body := []byte("Message-ID: <limit@example.com>\r\nSubject: stored anyway\r\n\r\nbody\r\n")
	date := time.Date(2022, 1, 2, 3, 4, 5, 0, time.UTC)
	inbox := formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}
	_, err = m.Store(ctx, inbox, formats.Message{Flags: []string{`\Seen`}, Date: date}, int64(len(body)), bytes.NewReader(body))
	if errors.Is(err, migrate.ErrQueued) {
		_, err = m.Commit(ctx)
	}
	if err != nil {
		t.Fatalf("storing with the APPEND connection refused: %v", err)
	}
	if !m.noBatch {
		t.Error("the sink still batches: its APPEND connection was not refused?")
	}
	m.Close()
	held.Close()
	// The server counts a session until it has seen it end.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := DialIMAP(ctx, cfg)
		if err == nil {
			c.Close()
			break
		}
		if !errors.Is(err, migrate.ErrTooManyConnections) || time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	sum := sha256.Sum256(body)
	got := srv.Snapshot(t, "alice")["INBOX"]
	if len(got) != 1 || got[0].SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("INBOX holds %+v, want the one message stored", got)
	}
}

// refusedForNow tells a refusal for the number of sessions or for now from
// a refused password, by code and by the words servers use.
func TestRefusedForNow(t *testing.T) {
	cfg := mailconn.ServerConfig{Addr: "imap.example.com:993", User: "alice"}
	for _, tc := range []struct {
		code            imap.ResponseCode
		text            string
		tooMany, forNow bool
	}{
		{"LIMIT", "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)", true, true},
		{"UNAVAILABLE", "Maximum number of connections from user+IP exceeded (mail_max_userip_connections=16)", true, true}, // Dovecot before 2.3
		{"ALERT", "Too many simultaneous connections. (Failure)", true, true},                                               // Gmail
		{"UNAVAILABLE", "Temporary authentication failure. [host:2024-01-01 00:00:00]", false, true},
		{"AUTHENTICATIONFAILED", "Authentication failed.", false, false},
		{"AUTHENTICATIONFAILED", "Invalid credentials (Failure)", false, false},
		{"", "LOGIN failed.", false, false},
		{"ALERT", "Please log in via your web browser", false, false},
	} {
		err := refusedForNow(cfg, tc.code, tc.text)
		if got := errors.Is(err, migrate.ErrTooManyConnections); got != tc.tooMany {
			t.Errorf("[%s] %s: too many connections %v, want %v (%v)", tc.code, tc.text, got, tc.tooMany, err)
		}
		if got := err != nil && migrate.IsRetryable(err); got != tc.forNow {
			t.Errorf("[%s] %s: tried again later %v, want %v (%v)", tc.code, tc.text, got, tc.forNow, err)
		}
	}
}

// Gmail, beyond its 15 sessions, answers an OAuth2 login with an error
// challenge (status 400) and, after the client's empty line, "NO [ALERT]
// Too many simultaneous connections. (Failure)" (the exchange as MailKit
// issue 377 shows it). The APPEND connection, which reads that last line,
// takes it for the number of sessions (and its sink then stores on the
// main connection), not for a bad token. A scripted server: Gmail cannot
// run here.
func TestAppenderGmailTooManyConnectionsIsNotABadToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		fmt.Fprintf(conn, "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Gimap ready\r\n")
		var lines []string
		defer func() { got <- lines }()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\r\n")
			lines = append(lines, line)
			if f := strings.Fields(line); len(f) >= 2 && strings.EqualFold(f[1], "AUTHENTICATE") {
				fmt.Fprintf(conn, "+ eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==\r\n")
				if l, err := br.ReadString('\n'); err == nil {
					lines = append(lines, strings.TrimRight(l, "\r\n"))
				}
				fmt.Fprintf(conn, "%s NO [ALERT] Too many simultaneous connections. (Failure)\r\n", f[0])
				return
			}
		}
	}()
	cfg := mailconn.ServerConfig{Addr: ln.Addr().String(), User: "alice@gmail.com", TLS: mailconn.TLSNone, Timeout: 10 * time.Second}
	_, err = dialAppenderToken(cfg, imapAuth{mech: mailconn.MechXOAuth2, saslIR: true}, "ya29.secret-token")
	if !errors.Is(err, migrate.ErrTooManyConnections) || errors.Is(err, migrate.ErrAuth) || !migrate.IsRetryable(err) {
		t.Fatalf("got %v; want a retryable ErrTooManyConnections, not ErrAuth", err)
	}
	if strings.Contains(err.Error(), "secret-token") {
		t.Errorf("the token is in the error: %v", err)
	}
	if lines := <-got; len(lines) != 2 || lines[1] != "" {
		t.Errorf("the client sent %q, want AUTHENTICATE and the empty line XOAUTH2 answers an error challenge with", lines)
	}
}
