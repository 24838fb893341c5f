package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// Issue 12 items 7 and 9 through the CLI: a Maildir another program wrote,
// with modified UTF-7 names (.Priv&AOk-.Gr&APYA3w-e), a nested folder
// beside the Maildir++ ones and a name that is not modified UTF-7, migrated
// to Dovecot: every folder arrives under its decoded name (not encoded a
// second time), and each ambiguity is a "mailferry: warning:" line and in
// the report.
func TestImportForeignMaildirWarnsAndDecodes(t *testing.T) {
	t.Parallel()
	src := smallMaildir(t, 1, ".Priv&AOk-.Gr&APYA3w-e", ".A&B", "Other")
	dst := dovecottest.Start(t, dovecottest.Options{})
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, "migrate", "maildir:"+src, "imap://alice@"+dst.IMAPAddr(), "--dst-tls", "none",
		"--state-dir", t.TempDir(), "--progress", "never", "--report", report)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var listed []string
	for _, d := range dst.Folders(t, "alice") {
		listed = append(listed, d.Mailbox)
	}
	for _, want := range []string{"Privé/Größe", "A&B", "Other"} {
		if !slices.Contains(listed, want) {
			t.Errorf("the destination lacks %q: it lists %q", want, listed)
		}
	}
	warnings := []string{"the tree mixes Maildir++ folders", `"A&B" is not modified UTF-7`}
	for _, w := range warnings {
		if !strings.Contains(errOut, "mailferry: warning: Maildir ") || !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks a warning with %q:\n%s", w, errOut)
		}
		if strings.Count(errOut, w) != 1 {
			t.Errorf("warning %q said %d times", w, strings.Count(errOut, w))
		}
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct{ Warnings []string }
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		if !slices.ContainsFunc(rep.Warnings, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("the report's warnings lack %q: %q", w, rep.Warnings)
		}
	}
}
