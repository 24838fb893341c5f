package main

// End-to-end TLS tests: the mailferry command, run in-process, with a real
// Dovecot source that speaks TLS (dovecottest Options.TLS: its own CA,
// imaps and STARTTLS) and a plaintext Dovecot destination (--dst-tls none).
// Every run checks the exit code, the one line on stderr that says what
// happened, and that neither password appears in stdout or stderr.

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/pop3"
)

// tlsSetup is a TLS source and a plaintext destination, alice on both with
// passwords unique to the test, and a small seeded mailbox at the source.
type tlsSetup struct {
	src, dst *dovecottest.Server
	msgs     []dovecottest.SeedMessage
	state    string
	secrets  []string
}

// newTLSSetup starts the source with srcOpts (Users is replaced) and the
// destination without TLS, and seeds the source.
func newTLSSetup(t *testing.T, srcOpts dovecottest.Options) *tlsSetup {
	t.Helper()
	n := rand.Int64()
	srcPW, dstPW := fmt.Sprintf("src-pw-%x", n), fmt.Sprintf("dst-pw-%x", n)
	srcOpts.Users = map[string]string{"alice": srcPW}
	s := &tlsSetup{
		src:     dovecottest.Start(t, srcOpts),
		dst:     dovecottest.Start(t, dovecottest.Options{Separator: '.', Users: map[string]string{"alice": dstPW}}),
		state:   t.TempDir(),
		secrets: []string{srcPW, dstPW},
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", srcPW)
	setenv(t, "MAILFERRY_DST_PASSWORD", dstPW)
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	for i, folder := range []string{"INBOX", "INBOX", "INBOX", "Work", "Work"} {
		s.msgs = append(s.msgs, dovecottest.SeedMessage{
			Folder: folder,
			Body: []byte(fmt.Sprintf("From: Alice <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n"+
				"Subject: over TLS %d\r\nMessage-ID: <tls-%d@example.org>\r\n"+
				"Date: Sat, 03 Feb 2024 04:05:06 +0000\r\n\r\nMessage %d, sent over TLS.\r\n", i, i, i)),
			Flags: [][]string{nil, {`\Seen`}, {`\Flagged`}}[i%3],
			Date:  date.Add(time.Duration(i) * time.Hour),
		})
	}
	s.src.Seed(t, "alice", s.msgs)
	return s
}

// imapsURL is imaps://alice@host:IMAPSPort; host "" means 127.0.0.1.
func (s *tlsSetup) imapsURL(host string) string {
	if host == "" {
		host = s.src.Host
	}
	return "imaps://alice@" + net.JoinHostPort(host, strconv.Itoa(s.src.IMAPSPort))
}

// imapURL is imap://alice@host:IMAPPort (STARTTLS by default).
func (s *tlsSetup) imapURL(host string) string {
	if host == "" {
		host = s.src.Host
	}
	return "imap://alice@" + net.JoinHostPort(host, strconv.Itoa(s.src.IMAPPort))
}

// migrate runs mailferry migrate srcURL to the destination (--dst-tls none)
// with extra flags, checks that no password shows, and returns the exit
// code, stdout and stderr.
func (s *tlsSetup) migrate(t *testing.T, srcURL string, extra ...string) (int, string, string) {
	t.Helper()
	args := append([]string{"migrate", srcURL, "imap://alice@" + s.dst.IMAPAddr(),
		"--dst-tls", "none", "--state-dir", s.state, "--progress", "never"}, extra...)
	began := time.Now()
	code, out, errOut := mailferry(t, args...)
	t.Logf("mailferry %s\n-> exit %d in %v\nstdout:\n%sstderr:\n%s",
		strings.Join(args, " "), code, time.Since(began).Round(time.Millisecond), out, errOut)
	for _, pw := range s.secrets {
		if strings.Contains(out, pw) || strings.Contains(errOut, pw) {
			t.Errorf("a password (%.6s…) appears in the output", pw)
		}
	}
	return code, out, errOut
}

// stderrLines returns the non-empty lines of stderr.
func stderrLines(errOut string) []string {
	var lines []string
	for _, l := range strings.Split(errOut, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// wantOneErrorLine checks that stderr is exactly one line, "mailferry: …",
// containing every one of want (case-insensitively).
func wantOneErrorLine(t *testing.T, errOut string, want ...string) {
	t.Helper()
	lines := stderrLines(errOut)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "mailferry: ") {
		t.Errorf("stderr is not one \"mailferry: ...\" line:\n%s", errOut)
		return
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(w)) {
			t.Errorf("stderr line does not mention %q: %s", w, lines[0])
		}
	}
}

// wantCopied checks that the destination holds exactly the seeded messages,
// folder by folder (bytes; flags and dates are e2e_test.go's business).
func (s *tlsSetup) wantCopied(t *testing.T) {
	t.Helper()
	want := map[string][]string{}
	for _, m := range s.msgs {
		want[m.Folder] = append(want[m.Folder], fmt.Sprintf("%d bytes %.40q", len(m.Body), m.Body))
	}
	snap := s.dst.Snapshot(t, "alice")
	srcSnap := s.src.Snapshot(t, "alice")
	for folder, msgs := range want {
		got, src := hashes(snap[folder]), hashes(srcSnap[folder])
		if strings.Join(got, " ") != strings.Join(src, " ") || len(got) != len(msgs) {
			t.Errorf("destination %s: %d messages %v, want the source's %d %v", folder, len(got), got, len(src), src)
		}
	}
	if total(snap) != len(s.msgs) {
		t.Errorf("destination holds %d messages, want %d", total(snap), len(s.msgs))
	}
}

// wantNothingCopied checks that the destination holds no message.
func (s *tlsSetup) wantNothingCopied(t *testing.T) {
	t.Helper()
	if n := total(s.dst.Snapshot(t, "alice")); n != 0 {
		t.Errorf("destination holds %d messages after a refused connection, want 0", n)
	}
}

func hashes(ms []dovecottest.MessageState) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.SHA256
	}
	sort.Strings(out)
	return out
}

// maxRefusal bounds how long a refused TLS connection may take: a TLS
// failure is not a network hiccup and must not be retried with back-off.
const maxRefusal = 15 * time.Second

// wantFast checks that a refused run ended within maxRefusal.
func wantFast(t *testing.T, began time.Time) {
	t.Helper()
	if d := time.Since(began); d > maxRefusal {
		t.Errorf("the refusal took %v: a TLS error looks retried", d.Round(time.Millisecond))
	}
}

// TestTLSImplicitWithCAFile: imaps:// with --ca-file naming the source's CA
// copies everything; a rerun copies nothing again.
func TestTLSImplicitWithCAFile(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	code, out, errOut := s.migrate(t, s.imapsURL(""), "--ca-file", s.src.CAFile)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	if lines := stderrLines(errOut); len(lines) != 0 {
		t.Errorf("stderr of a clean run: %q, want nothing", lines)
	}
	if !strings.Contains(out, fmt.Sprintf("copied %d messages", len(s.msgs))) {
		t.Errorf("stdout does not say %d messages were copied:\n%s", len(s.msgs), out)
	}
	s.wantCopied(t)

	code, out, errOut = s.migrate(t, s.imapsURL(""), "--ca-file", s.src.CAFile)
	if code != 0 || !strings.Contains(out, "copied 0 messages") {
		t.Fatalf("rerun: exit %d, want 0 and nothing copied\n%s%s", code, out, errOut)
	}
	s.wantCopied(t)
}

// TestTLSStartTLSWithCAFile: imap:// (STARTTLS, the default for the scheme)
// on the plaintext port with --ca-file copies everything, also when the
// host is given by name (the certificate names localhost).
func TestTLSStartTLSWithCAFile(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	code, out, errOut := s.migrate(t, s.imapURL(""), "--ca-file", s.src.CAFile)
	if code != 0 {
		t.Fatalf("exit %d, want 0\n%s%s", code, out, errOut)
	}
	if lines := stderrLines(errOut); len(lines) != 0 {
		t.Errorf("stderr of a clean run: %q, want nothing", lines)
	}
	s.wantCopied(t)

	// Explicit --src-tls starttls, by name, on a fresh state: nothing new.
	code, out, errOut = s.migrate(t, s.imapURL("localhost"), "--ca-file", s.src.CAFile, "--src-tls", "starttls")
	if code != 0 {
		t.Fatalf("by name: exit %d, want 0\n%s%s", code, out, errOut)
	}
	s.wantCopied(t)
}

// TestTLSUnknownCA: without --ca-file (system roots only), or with a
// --ca-file of another CA, the source's certificate is refused: exit 1, one
// line naming the certificate and the unknown authority, nothing copied.
func TestTLSUnknownCA(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	other := dovecottest.WriteOtherCA(t)
	for _, tc := range []struct {
		name, url string
		extra     []string
	}{
		{"imaps without --ca-file", s.imapsURL(""), nil},
		{"imaps with another CA", s.imapsURL(""), []string{"--ca-file", other}},
		{"STARTTLS without --ca-file", s.imapURL(""), nil},
		{"STARTTLS with another CA", s.imapURL("localhost"), []string{"--ca-file", other}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			code, out, errOut := s.migrate(t, tc.url, tc.extra...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			wantFast(t, began)
			wantOneErrorLine(t, errOut, "certificate", "unknown authority")
			s.wantNothingCopied(t)
		})
	}
}

// TestTLSWrongHostName: the source's certificate names only
// mail.example.invalid (Options.TLSHost), its CA is trusted, and mailferry
// connects as 127.0.0.1 or localhost: exit 1, one line naming the
// certificate and the host name asked for, nothing copied.
func TestTLSWrongHostName(t *testing.T) {
	t.Parallel()
	const certHost = "mail.example.invalid"
	s := newTLSSetup(t, dovecottest.Options{TLS: true, TLSHost: certHost})
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"imaps by IP", s.imapsURL(""), []string{"certificate", "127.0.0.1"}},
		{"imaps by name", s.imapsURL("localhost"), []string{"certificate", "localhost", certHost}},
		{"STARTTLS by IP", s.imapURL(""), []string{"certificate", "127.0.0.1"}},
		{"STARTTLS by name", s.imapURL("localhost"), []string{"certificate", "localhost", certHost}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			began := time.Now()
			code, out, errOut := s.migrate(t, tc.url, "--ca-file", s.src.CAFile)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
			}
			wantFast(t, began)
			wantOneErrorLine(t, errOut, tc.want...)
			s.wantNothingCopied(t)
		})
	}
}

// TestTLSInsecureSkipVerify: --insecure-skip-verify without --ca-file
// accepts the unknown CA (exit 0, everything copied) and says so on stderr
// on every run, not only the first.
func TestTLSInsecureSkipVerify(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	for run := 1; run <= 2; run++ {
		code, out, errOut := s.migrate(t, s.imapsURL(""), "--insecure-skip-verify")
		if code != 0 {
			t.Fatalf("run %d: exit %d, want 0\n%s%s", run, code, out, errOut)
		}
		warnings := 0
		for _, l := range stderrLines(errOut) {
			if strings.Contains(l, "WARNING") && strings.Contains(l, "--insecure-skip-verify") &&
				strings.Contains(l, "NOT checked") {
				warnings++
			} else {
				t.Errorf("run %d: unexpected stderr line: %s", run, l)
			}
		}
		if warnings == 0 {
			t.Errorf("run %d: no --insecure-skip-verify warning on stderr:\n%s", run, errOut)
		}
		s.wantCopied(t)
	}
}

// TestTLSImplicitOnPlaintextPort: imaps:// pointed at the plaintext port
// fails the handshake: exit 1, one line that says TLS failed, quickly.
func TestTLSImplicitOnPlaintextPort(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	began := time.Now()
	code, out, errOut := s.migrate(t, "imaps://alice@"+s.src.IMAPAddr(), "--ca-file", s.src.CAFile)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	wantFast(t, began)
	wantOneErrorLine(t, errOut, "tls", s.src.IMAPAddr())
	s.wantNothingCopied(t)
}

// TestTLSDestinationWithoutSTARTTLSRefused: the destination side of
// TestPlaintextLoginRefusedWithoutTLSNone. A TLS source, a destination that
// does not offer STARTTLS given as imap:// without --dst-tls none: exit 1,
// one line saying STARTTLS is not offered, and the destination's password
// never sent (nothing copied).
func TestTLSDestinationWithoutSTARTTLSRefused(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	args := []string{"migrate", s.imapsURL(""), "imap://alice@" + s.dst.IMAPAddr(),
		"--ca-file", s.src.CAFile, "--state-dir", s.state, "--progress", "never"}
	began := time.Now()
	code, out, errOut := mailferry(t, args...)
	t.Logf("exit %d\nstdout:\n%sstderr:\n%s", code, out, errOut)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	wantFast(t, began)
	wantOneErrorLine(t, errOut, "does not offer STARTTLS", s.dst.IMAPAddr())
	for _, pw := range s.secrets {
		if strings.Contains(out+errOut, pw) {
			t.Errorf("a password (%.6s…) appears in the output", pw)
		}
	}
	s.wantNothingCopied(t)
}

// stallServer accepts connections and stalls them. proto "imap" greets,
// offers STARTTLS and answers OK to it, "pop3" greets, offers STLS in CAPA
// and answers +OK to it; then neither sends anything more (a broken server,
// or a middlebox that eats the TLS handshake). proto "" sends nothing at all
// (a pop3s or imaps port that never answers the ClientHello). close drops
// every connection, which unblocks any client still waiting.
type stallServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newStallServer(t *testing.T, proto string) *stallServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallServer{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			go func() {
				r := bufio.NewReader(c)
				switch proto {
				case "imap":
					fmt.Fprintf(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] stalling test server\r\n")
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, _, _ := strings.Cut(line, " ")
					fmt.Fprintf(c, "%s OK Begin TLS negotiation now\r\n", tag)
				case "pop3":
					fmt.Fprintf(c, "+OK stalling test server\r\n")
					for {
						line, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if cmd := strings.ToUpper(strings.TrimSpace(line)); cmd == "CAPA" {
							fmt.Fprintf(c, "+OK\r\nUSER\r\nSTLS\r\n.\r\n")
							continue
						} else if cmd == "STLS" {
							fmt.Fprintf(c, "+OK Begin TLS negotiation\r\n")
							break
						}
						fmt.Fprintf(c, "-ERR STLS first\r\n")
					}
				}
				io.Copy(io.Discard, r) // and never a ServerHello
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *stallServer) close() {
	s.ln.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
}

// TestTLSHandshakeStallIsBounded: a server that stops answering in the
// middle of the TLS handshake must not hang mailferry: DialIMAP (and
// DialPOP3) have to give up after ServerConfig.Timeout, and when their
// context is cancelled (Ctrl-C, which main turns into a cancelled context),
// for implicit TLS and for STARTTLS alike.
func TestTLSHandshakeStallIsBounded(t *testing.T) {
	t.Parallel()
	const (
		timeout = time.Second
		grace   = 4 * time.Second // how long past timeout counts as hanging
	)
	for _, tc := range []struct {
		name    string
		pop3    bool
		mode    mailconn.TLSMode
		timeout time.Duration // ServerConfig.Timeout
		cancel  time.Duration // context deadline; 0: none
	}{
		{"implicit TLS, Timeout", false, mailconn.TLSImplicit, timeout, 0},
		{"implicit TLS, context cancelled", false, mailconn.TLSImplicit, 0, timeout},
		{"STARTTLS, Timeout", false, mailconn.TLSStartTLS, timeout, 0},
		{"STARTTLS, context cancelled", false, mailconn.TLSStartTLS, 0, timeout},
		{"POP3 implicit TLS, context cancelled", true, mailconn.TLSImplicit, 0, timeout},
		{"POP3 STLS, Timeout", true, mailconn.TLSStartTLS, timeout, 0},
		{"POP3 STLS, context cancelled", true, mailconn.TLSStartTLS, 0, timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proto := ""
			if tc.mode == mailconn.TLSStartTLS {
				proto = map[bool]string{false: "imap", true: "pop3"}[tc.pop3]
			}
			srv := newStallServer(t, proto)
			ctx := context.Background()
			if tc.cancel > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.cancel)
				defer cancel()
			}
			cfg := mailconn.ServerConfig{
				Addr: srv.ln.Addr().String(), User: "alice", Password: "stall-secret-pw",
				TLS: tc.mode, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}, Timeout: tc.timeout,
			}
			type result struct {
				c   io.Closer
				err error
			}
			dial, what := func() (io.Closer, error) { return imap.DialIMAP(ctx, cfg) }, "DialIMAP"
			if tc.pop3 {
				dial, what = func() (io.Closer, error) { return pop3.DialPOP3(ctx, cfg) }, "DialPOP3"
			}
			done := make(chan result, 1)
			began := time.Now()
			go func() {
				c, err := dial()
				done <- result{c, err}
			}()
			select {
			case r := <-done:
				if r.err == nil {
					r.c.Close()
					t.Fatalf("%s succeeded against a server that never finishes the handshake", what)
				}
				t.Logf("%s gave up after %v: %v", what, time.Since(began).Round(time.Millisecond), r.err)
				if strings.Contains(r.err.Error(), cfg.Password) {
					t.Errorf("the password appears in the error: %v", r.err)
				}
			case <-time.After(timeout + grace):
				srv.close() // unblocks the dial, so the test ends
				r := <-done
				t.Errorf("%s (%s) was still blocked %v after the server stopped answering the TLS handshake "+
					"(Timeout %v, context deadline %v); it returned only when the server hung up: %v",
					what, tc.mode, timeout+grace, tc.timeout, tc.cancel, r.err)
			}
		})
	}
}

// TestTLSPOP3Dial: pop3.DialPOP3 against the real TLS Dovecot: pop3s and
// STLS with the source's CA log in and see the seeded INBOX; an unknown CA,
// a certificate for another name, and a server without STLS are ErrTLS
// naming the cause, without the password. (TestTLSPOP3CLI runs the
// command; this pins the errors of each case.)
func TestTLSPOP3Dial(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	named := dovecottest.Start(t, dovecottest.Options{TLS: true, TLSHost: "mail.example.invalid", Users: s.src.Users})
	plain := dovecottest.Start(t, dovecottest.Options{Users: s.src.Users})
	pw := s.src.Users["alice"]
	inbox := 0
	for _, m := range s.msgs {
		if m.Folder == "INBOX" {
			inbox++
		}
	}
	pool := func(t *testing.T, caFile string) *x509.CertPool {
		b, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			t.Fatalf("no certificate in %s", caFile)
		}
		return p
	}
	for _, tc := range []struct {
		name   string
		addr   string
		mode   mailconn.TLSMode
		caFile string
		want   []string // in the error; nil: the login works
	}{
		{"pop3s", s.src.POP3SAddr(), mailconn.TLSImplicit, s.src.CAFile, nil},
		{"STLS", s.src.POP3Addr(), mailconn.TLSStartTLS, s.src.CAFile, nil},
		{"pop3s by name", "localhost:" + strconv.Itoa(s.src.POP3SPort), mailconn.TLSImplicit, s.src.CAFile, nil},
		{"pop3s unknown CA", s.src.POP3SAddr(), mailconn.TLSImplicit, dovecottest.WriteOtherCA(t), []string{"certificate", "unknown authority"}},
		{"STLS unknown CA", s.src.POP3Addr(), mailconn.TLSStartTLS, dovecottest.WriteOtherCA(t), []string{"certificate", "unknown authority"}},
		{"pop3s wrong name", "localhost:" + strconv.Itoa(named.POP3SPort), mailconn.TLSImplicit, named.CAFile, []string{"certificate", "mail.example.invalid", "localhost"}},
		{"STLS wrong name", named.POP3Addr(), mailconn.TLSStartTLS, named.CAFile, []string{"certificate", "127.0.0.1"}},
		{"STLS not offered", plain.POP3Addr(), mailconn.TLSStartTLS, s.src.CAFile, []string{"does not offer STLS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			p, err := pop3.DialPOP3(ctx, mailconn.ServerConfig{
				Addr: tc.addr, User: "alice", Password: pw, TLS: tc.mode,
				TLSConfig: &tls.Config{RootCAs: pool(t, tc.caFile), MinVersion: tls.VersionTLS12},
				Timeout:   10 * time.Second,
			})
			if tc.want == nil {
				if err != nil {
					t.Fatalf("DialPOP3 %s (%s): %v", tc.addr, tc.mode, err)
				}
				defer p.Close()
				fs, err := p.Folders(ctx)
				if err != nil || len(fs) != 1 || int(fs[0].Messages) != inbox {
					t.Errorf("Folders: %+v %v, want INBOX with %d messages", fs, err, inbox)
				}
				return
			}
			if err == nil {
				p.Close()
				t.Fatalf("DialPOP3 %s (%s) logged in; want a TLS refusal", tc.addr, tc.mode)
			}
			t.Logf("as expected: %v", err)
			if !errors.Is(err, migrate.ErrTLS) {
				t.Errorf("error does not wrap ErrTLS: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("the password appears in the error")
			}
		})
	}
}

// TestTLSPOP3CLI: the CLI with pop3s:// and pop3:// (STLS) sources on the
// TLS Dovecot, and pop3:// on a Dovecot without STLS. Skipped, saying so,
// on a build whose CLI does not open POP3 sources (endpoint.go openSource).
func TestTLSPOP3CLI(t *testing.T) {
	t.Parallel()
	s := newTLSSetup(t, dovecottest.Options{TLS: true})
	plain := dovecottest.Start(t, dovecottest.Options{Users: s.src.Users})
	code, out, errOut := s.migrate(t, "pop3s://alice@"+s.src.POP3SAddr(), "--ca-file", s.src.CAFile)
	if code == 2 && strings.Contains(errOut, "cannot be a source yet") {
		t.Skipf("the CLI does not open pop3 sources yet: %s", strings.TrimSpace(errOut))
	}
	if code != 0 {
		t.Fatalf("pop3s: exit %d, want 0\n%s%s", code, out, errOut)
	}
	inbox := len(s.src.Snapshot(t, "alice")["INBOX"])
	if n := len(s.dst.Snapshot(t, "alice")["INBOX"]); n != inbox {
		t.Errorf("pop3s: destination INBOX holds %d messages, want the source INBOX's %d", n, inbox)
	}
	// Through STLS: the same maildrop, so nothing is copied twice.
	if code, out, errOut := s.migrate(t, "pop3://alice@"+s.src.POP3Addr(), "--ca-file", s.src.CAFile); code != 0 {
		t.Errorf("pop3 with STLS: exit %d, want 0\n%s%s", code, out, errOut)
	} else if lines := stderrLines(errOut); len(lines) != 0 {
		t.Errorf("pop3 with STLS: stderr of a clean run: %q, want nothing", lines)
	}
	if n := len(s.dst.Snapshot(t, "alice")["INBOX"]); n != inbox {
		t.Errorf("after pop3 with STLS: destination INBOX holds %d messages, want still %d", n, inbox)
	}
	began := time.Now()
	code, out, errOut = s.migrate(t, "pop3://alice@"+plain.POP3Addr())
	if code != 1 {
		t.Fatalf("pop3 without STLS: exit %d, want 1\n%s%s", code, out, errOut)
	}
	wantFast(t, began)
	wantOneErrorLine(t, errOut, "does not offer STLS")
}
