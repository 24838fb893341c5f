package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// mbxTree writes files below dir (slash paths).
func mbxTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// mbxArchived is what an archive run's manifest holds: folder -> the
// messages' SHA-256, in order.
func mbxArchived(t *testing.T, dir string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, e := range manifestEntries(t, dir) {
		got[e.Folder] = append(got[e.Folder], e.SHA256)
	}
	return got
}

// Issue 12 item 10: a directory of mbox files without the ".mbox" suffix,
// as Dovecot's mbox storage (with its .imap index directory) and mutt's
// ~/Mail (nested directories, names in raw UTF-8) leave it, imports every
// folder; one such file given as mbox:PATH is read as INBOX; a file that is
// not an mbox and an ambiguous From line are each a "mailferry: warning:"
// line and in the report's warnings.
func TestImportMboxDirectoryWithoutSuffix(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	src := filepath.Join(work, "Mail")
	msg := func(n string) string {
		return "Subject: " + n + "\nMessage-ID: <" + n + "@example.com>\n\nbody of " + n + "\n"
	}
	from := "From alice@example.com Mon Jan  1 00:00:00 2001\n"
	ambiguous := "Subject: mboxo\nMessage-ID: <mboxo@example.com>\n\nquoted:\nFrom bob\nTo: carol\n"
	mbxTree(t, src, map[string]string{
		"inbox":                                from + msg("i1") + "\n" + from + msg("i2") + "\n",
		"sent":                                 from + msg("s1") + "\n",
		"lists/golang":                         from + msg("g1") + "\n" + from + ambiguous + "\n",
		"Archiv-Größe":                         from + msg("a1") + "\n",
		"empty":                                "",
		"notes.txt":                            "shopping list\n",
		".subscriptions":                       "sent\nlists/golang\n",
		".imap/dovecot.list.index":             "\x00\x01binary",
		".imap/INBOX/dovecot.index":            "\x00\x02binary",
		"lists/.imap/golang/dovecot.index.log": "\x00\x03binary",
		"inbox.lock":                           "",
	})
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	want := map[string][]string{
		"INBOX":        {sum(msg("i1")), sum(msg("i2"))},
		"sent":         {sum(msg("s1"))},
		"lists/golang": {sum(msg("g1")), sum(ambiguous)},
		"Archiv-Größe": {sum(msg("a1"))},
	}

	out, report := filepath.Join(work, "out"), filepath.Join(work, "report.json")
	code, stdout, stderr := mailferry(t, "archive", "mbox:"+src, out, "--progress", "never",
		"--state-dir", filepath.Join(work, "state"), "--report", report)
	if code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, stdout, stderr)
	}
	got := mbxArchived(t, out)
	for f, sums := range want {
		if !slices.Equal(got[f], sums) {
			t.Errorf("folder %q: archived %d messages %v, want %d", f, len(got[f]), got[f], len(sums))
		}
	}
	var names []string
	for f := range got {
		names = append(names, f)
	}
	sort.Strings(names)
	if len(names) != len(want) {
		t.Errorf("archived folders %q, want those of %v (and an empty one)", names, want)
	}
	wantWarn := []string{
		"mailferry: warning: mbox: notes.txt: not an mbox file (no From_ line at its start); skipped",
		"mailferry: warning: mbox: lists/golang: mboxrd: message 1 at offset",
	}
	var rep struct{ Warnings []string }
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	for _, w := range wantWarn {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr)
		}
		if !slices.ContainsFunc(rep.Warnings, func(r string) bool { return strings.HasPrefix("mailferry: warning: "+r, w) }) {
			t.Errorf("the report's warnings lack %q: %q", w, rep.Warnings)
		}
	}
	if strings.Contains(stderr, "dovecot") || strings.Contains(stderr, "subscriptions") || strings.Contains(stderr, ".lock") {
		t.Errorf("warned about a file every mbox reader skips:\n%s", stderr)
	}

	// One such file, given directly.
	out2 := filepath.Join(work, "out2")
	if code, stdout, stderr := mailferry(t, "archive", "mbox:"+filepath.Join(src, "sent"), out2, "--progress", "never",
		"--state-dir", filepath.Join(work, "state")); code != 0 {
		t.Fatalf("archive mbox:FILE: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if got := mbxArchived(t, out2); len(got) != 1 || !slices.Equal(got["INBOX"], want["sent"]) {
		t.Errorf("mbox:Mail/sent archived as %v, want INBOX %v", got, want["sent"])
	}
}
