package main

// Issue 9, item 7 on the real servers that rewrite what they store: Cyrus
// (munge8bit: 8-bit header bytes become X) and Courier (a final CRLF
// added). A run killed with SIGKILL and resumed, and a rerun with a fresh
// state directory, add no copy.

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

func TestRewritingServersKillAndFreshStateAddNoCopy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the kill test runs the binary several times")
	}
	for _, kind := range []servertest.Kind{servertest.Cyrus, servertest.Courier} {
		t.Run(string(kind), func(t *testing.T) {
			dst := servertest.Start(t, kind, servertest.Options{})
			src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			var msgs []dovecottest.SeedMessage
			for _, m := range rewrittenByServers(25) { // 200 messages
				// Cyrus refuses a message without a header/body separator
				// ("NO Message contains invalid header"): that is a refusal,
				// tested elsewhere, not a rewrite.
				if kind == servertest.Cyrus && !bytes.Contains(m.Body, []byte("\r\n\r\n")) {
					continue
				}
				msgs = append(msgs, m)
			}
			src.Seed(t, "alice", msgs)
			setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
			setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users[dst.User])
			state := t.TempDir()
			args := []string{"migrate", dovecotURL(src), serverURL(dst), "--src-tls", "none", "--dst-tls", "none",
				"--state-dir", state, "--progress", "never"}
			bin := binary(t)
			kills := killRuns(t, bin, args, 2)
			final := exec.Command(bin, args...)
			final.Env = environFor(t)
			if out, err := final.CombinedOutput(); err != nil {
				t.Fatalf("final run after %d kills: %v\n%s", kills, err, out)
			}
			inbox := dst.Name("INBOX")
			if got := len(dst.Bodies(t, dst.User, inbox)); got != len(msgs) {
				t.Fatalf("after %d kills and a final run %s holds %d messages, want %d", kills, kind, got, len(msgs))
			}
			// A fresh state directory: everything is found there by key.
			code, out, errOut, report := migrateBetween(t, dovecotURL(src), serverURL(dst), src.Users["alice"], dst.Users[dst.User], t.TempDir())
			if code != 0 {
				t.Fatalf("fresh-state rerun: exit %d\n%s\n%s", code, out, errOut)
			}
			if r := readReport(t, report); r.Totals.Copied != 0 {
				t.Errorf("fresh-state rerun copied %d into %s, want 0", r.Totals.Copied, kind)
			}
			if got := len(dst.Bodies(t, dst.User, inbox)); got != len(msgs) {
				t.Errorf("after the fresh-state rerun %s holds %d messages, want %d", kind, got, len(msgs))
			}
		})
	}
}
