package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Issue 15: the command line as a person meets it. These tests hold its
// messages as golden strings.

// smallMaildir makes a Maildir with n messages in INBOX and in each of the
// folders given (Maildir++ names: ".Archive").
func smallMaildir(t *testing.T, n int, folders ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "src")
	for _, f := range append([]string{""}, folders...) {
		dir := filepath.Join(root, f)
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < n; i++ {
			body := fmt.Sprintf("Message-ID: <m%d%s@cli>\r\nSubject: %d\r\nDate: Mon, 2 Jan 2023 10:00:00 +0000\r\n\r\nhello %d\r\n", i, f, i, i)
			name := fmt.Sprintf("1700000%03d.M%dP1.host:2,S", i, i)
			if err := os.WriteFile(filepath.Join(dir, "cur", name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// Warnings speak as everything else does: "mailferry: warning: …", naming
// the folder and the message; never slog's "time=… level=WARN msg=…".
func TestWarningsInOneVoice(t *testing.T) {
	src := smallMaildir(t, 1)
	for _, level := range []string{"info", "debug"} {
		dst := filepath.Join(t.TempDir(), "dst")
		code, out, errOut := mailferry(t, "migrate", "maildir:"+src, "maildir:"+dst, "--progress", "never",
			"--state-dir", t.TempDir(), "--max-message-size", "10", "--log-level", level)
		if code != 3 {
			t.Fatalf("%s: exit %d, want 3\n%s\n%s", level, code, out, errOut)
		}
		want := "mailferry: warning: INBOX: message <m0@cli> 1700000000.M0P1.host failed: "
		if !strings.Contains(errOut, want) {
			t.Errorf("%s: stderr lacks %q:\n%s", level, want, errOut)
		}
		for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
			if !strings.HasPrefix(l, "mailferry: ") || regexp.MustCompile(`\blevel=|\btime=|\bmsg=`).MatchString(l) {
				t.Errorf("%s: a line in another voice: %q", level, l)
			}
		}
		if level == "debug" && !strings.Contains(errOut, "mailferry: debug: ") {
			t.Errorf("debug: no debug line:\n%s", errOut)
		}
	}
}
