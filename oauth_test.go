package main

// OAuth2 end to end: Dovecot with an oauth2 passdb whose introspection
// endpoint is an HTTP server in the test (dovecottest.OAuth2Server), and the
// token from --src-oauth2-token-cmd / --dst-oauth2-token-cmd.

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// oauthPair is a '/' source and a '.' destination whose users may also log
// in with tokens that o grants.
type oauthPair struct {
	pair
	o *dovecottest.OAuth2Server
}

func newOAuthPair(t *testing.T) *oauthPair {
	t.Helper()
	o := dovecottest.StartOAuth2(t)
	p := &oauthPair{o: o, pair: pair{
		src:   dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUse: true, OAuth2IntrospectionURL: o.URL}),
		dst:   dovecottest.Start(t, dovecottest.Options{Separator: '.', SpecialUse: true, SentName: "Sent Items", OAuth2IntrospectionURL: o.URL}),
		state: t.TempDir(),
	}}
	// No password anywhere for a side that uses a token: were one asked
	// for, the run would stop with a usage error (no terminal here).
	setenv(t, "MAILFERRY_SRC_PASSWORD", "")
	setenv(t, "MAILFERRY_DST_PASSWORD", p.dst.Users["alice"])
	return p
}

func oneLineNaming(t *testing.T, errOut string, words ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 1 {
		t.Errorf("want one line on stderr, got:\n%s", errOut)
		return
	}
	for _, w := range words {
		if !strings.Contains(strings.ToLower(lines[0]), strings.ToLower(w)) {
			t.Errorf("the error line does not say %q: %s", w, lines[0])
		}
	}
}

func TestOAuth2SourceMigrates(t *testing.T) {
	t.Parallel()
	p := newOAuthPair(t)
	const token = "ya29.A0AfH6SMBx-test-token"
	p.o.Grant(token, "alice")
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")

	report := filepath.Join(t.TempDir(), "report.json")
	args := p.args("--src-oauth2-token-cmd", "echo "+token, "--report", report)
	code, out, errOut := mailferry(t, args...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s\nsource log:\n%s", code, out, errOut, p.src.LogTail(20))
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 {
		t.Errorf("copied %d of %d, failed %d", rep.Totals.Copied, len(msgs), rep.Totals.Failed)
	}
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
	if strings.Contains(out+errOut, token) {
		t.Error("the token appears in the output")
	}
	if n := len(p.o.Asked()); n == 0 {
		t.Error("the source never asked the introspection endpoint: no OAuth2 login happened")
	}

	report2 := filepath.Join(t.TempDir(), "report2.json")
	if code, out, errOut := mailferry(t, p.args("--src-oauth2-token-cmd", "echo "+token, "--report", report2)...); code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report2); r.Totals.Copied != 0 {
		t.Errorf("the rerun copied %d messages", r.Totals.Copied)
	}
}

func TestOAuth2WrongTokenExits1(t *testing.T) {
	t.Parallel()
	p := newOAuthPair(t)
	p.o.Grant("the-right-token", "alice")
	p.src.Seed(t, "alice", testMessages(t, 5))
	for _, side := range []string{"src", "dst"} {
		t.Run(side, func(t *testing.T) {
			wrong := fmt.Sprintf("expired-token-%s-%d", side, os.Getpid())
			args := p.args("--"+side+"-oauth2-token-cmd", "echo "+wrong)
			if side == "dst" {
				args = p.args("--src-oauth2-token-cmd", "echo the-right-token", "--dst-oauth2-token-cmd", "echo "+wrong)
			}
			code, out, errOut := mailferry(t, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
			}
			t.Log(strings.TrimSpace(errOut))
			oneLineNaming(t, errOut, "authentication failed", "token refused")
			if strings.Contains(out+errOut, wrong) || strings.Contains(out+errOut, "the-right-token") {
				t.Errorf("a token appears in the output:\n%s%s", out, errOut)
			}
		})
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 0 {
		t.Errorf("%d messages copied although a login was refused", n)
	}
}

func TestOAuth2TokenCommandFails(t *testing.T) {
	t.Parallel()
	p := newOAuthPair(t)
	for _, tc := range []struct{ cmd, says string }{
		{"echo partial-secret-output; echo oops >&2; exit 3", "--src-oauth2-token-cmd failed: exit status 3"},
		{"true", "--src-oauth2-token-cmd printed no token"},
	} {
		code, out, errOut := mailferry(t, p.args("--src-oauth2-token-cmd", tc.cmd)...)
		if code != 1 {
			t.Fatalf("%q: exit %d, want 1\n%s\n%s", tc.cmd, code, out, errOut)
		}
		t.Log(strings.TrimSpace(errOut))
		oneLineNaming(t, errOut, tc.says)
		if strings.Contains(out+errOut, "partial-secret-output") || strings.Contains(out+errOut, "oops") {
			t.Errorf("the command's output appears:\n%s%s", out, errOut)
		}
	}
	// A token command and a password for the same side: a usage error.
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("x\n"), 0o600)
	if code, _, errOut := mailferry(t, p.args("--src-oauth2-token-cmd", "echo t", "--src-password-file", pw)...); code != 2 {
		t.Errorf("token command with a password file: exit %d, want 2\n%s", code, errOut)
	}
}

// cutProxy forwards TCP connections to target and cuts, once, the first
// connection whose server-to-client bytes pass cutAfter: a connection lost
// in the middle of a FETCH, which the engine answers with a reconnect.
type cutProxy struct {
	addr     string
	accepted atomic.Int32
	cut      atomic.Bool
}

func startCutProxy(t *testing.T, target string, cutAfter int64) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &cutProxy{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				defer c.Close()
				defer s.Close()
				buf := make([]byte, 32<<10)
				var n int64
				for {
					k, err := s.Read(buf)
					if k > 0 {
						if _, werr := c.Write(buf[:k]); werr != nil {
							return
						}
						n += int64(k)
						if n > cutAfter && p.cut.CompareAndSwap(false, true) {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

// Every connection runs the token command again, and a token the server
// refuses (the introspection endpoint calls the first one expired) is
// replaced by a fresh one: the command prints tok-N for its Nth run.
func TestOAuth2TokenRunAgainOnReconnect(t *testing.T) {
	t.Parallel()
	p := newOAuthPair(t)
	dir := t.TempDir()
	cmd := func(prefix string) string {
		runs := filepath.Join(dir, prefix+".runs")
		return fmt.Sprintf(`echo run >> %s; echo "%s-$(( $(wc -l < %s) ))"`, runs, prefix, runs)
	}
	for i := 1; i <= 500; i++ {
		p.o.Grant(fmt.Sprintf("stok-%d", i), "alice")
		p.o.Grant(fmt.Sprintf("dtok-%d", i), "alice")
	}
	p.o.ExpireNext("stok-1", 1)
	p.o.ExpireNext("dtok-1", 1)
	msgs := testMessages(t, 300)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")

	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, p.args("--src-oauth2-token-cmd", cmd("stok"), "--dst-oauth2-token-cmd", cmd("dtok"),
		"--jobs", "3", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	sameContent(t, before, p.dst.Snapshot(t, "alice"), readReport(t, report))

	asked := p.o.Asked()
	for _, prefix := range []string{"stok", "dtok"} {
		b, err := os.ReadFile(filepath.Join(dir, prefix+".runs"))
		if err != nil {
			t.Fatal(err)
		}
		runs := strings.Count(string(b), "\n")
		var used []string
		for _, a := range asked {
			if strings.HasPrefix(a, prefix+"-") {
				used = append(used, a)
			}
		}
		sort.Strings(used)
		// One login per run: each token was presented once, so every
		// connection (and the login after the refusal) ran the command.
		distinct := map[string]bool{}
		for _, u := range used {
			distinct[u] = true
		}
		if len(used) != runs || len(distinct) != runs {
			t.Errorf("%s: the command ran %d times; the server saw %d logins with %d distinct tokens: %v", prefix, runs, len(used), len(distinct), used)
		}
		// The refused first token, the fresh one after it, and at least one
		// more connection (the engine's workers connect anew).
		t.Logf("%s: %d runs, tokens seen %v", prefix, runs, used)
		if runs < 3 || !distinct[prefix+"-1"] || !distinct[prefix+"-2"] {
			t.Errorf("%s: %d runs, tokens %v", prefix, runs, used)
		}
	}
	if refused := p.o.Refused(); strings.Join(refused, " ") != "stok-1 dtok-1" && strings.Join(refused, " ") != "dtok-1 stok-1" {
		t.Errorf("refused tokens %v, want the two expired first tokens only", refused)
	}
}

// A connection lost in the middle of a run: the engine reconnects, and the
// new connection logs in with a token from a new run of the command.
func TestOAuth2TokenRunAgainAfterLostConnection(t *testing.T) {
	t.Parallel()
	p := newOAuthPair(t)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	for i := 1; i <= 500; i++ {
		p.o.Grant(fmt.Sprintf("tok-%d", i), "alice")
	}
	msgs := testMessages(t, 300)
	for i := range msgs {
		msgs[i].Folder = "INBOX" // one big folder: the cut lands in its FETCH
	}
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	proxy := startCutProxy(t, p.src.IMAPAddr(), 256<<10)

	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, "migrate", "imap://alice@"+proxy.addr, "imap://alice@"+p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", p.state, "--progress", "never", "--report", report,
		"--src-oauth2-token-cmd", fmt.Sprintf(`echo run >> %s; echo "tok-$(( $(wc -l < %s) ))"`, runs, runs))
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !proxy.cut.Load() {
		t.Fatal("the proxy never cut a connection: the test proves nothing")
	}
	rep := readReport(t, report)
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
	if rep.Totals.Copied != len(msgs) {
		t.Errorf("copied %d of %d", rep.Totals.Copied, len(msgs))
	}
	b, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	n := strings.Count(string(b), "\n")
	t.Logf("%d source connections, %d token runs, tokens seen %v", proxy.accepted.Load(), n, p.o.Asked())
	if int(proxy.accepted.Load()) != n {
		t.Errorf("%d source connections but %d runs of the token command: each (re)connection must run it", proxy.accepted.Load(), n)
	}
	if strings.Contains(out+errOut, "tok-") {
		t.Errorf("a token appears in the output:\n%s%s", out, errOut)
	}
	if !strings.Contains(errOut, "trying again") {
		t.Errorf("no reconnect was reported:\n%s", errOut)
	}
}
