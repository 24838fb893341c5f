package main

import (
	"path/filepath"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// TestDryRunNamesPrefixedFoldersBehindWrappers: --dry-run names destination
// folders as the server will (with its INBOX. prefix) also when the sink is
// wrapped by --max-message-size (the wrapper used to hide the capability,
// and the report said "Archive.2023" for "INBOX.Archive.2023").
func TestDryRunNamesPrefixedFoldersBehindWrappers(t *testing.T) {
	t.Parallel()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.', NamespacePrefix: "INBOX."})
	src.Seed(t, "alice", plainMessages(4, "wrapped"))
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	for _, extra := range [][]string{nil, {"--max-message-size", "10MiB"}} {
		report := filepath.Join(t.TempDir(), "report.json")
		args := append([]string{"migrate", "imap://alice@" + src.IMAPAddr(), "imap://alice@" + dst.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never",
			"--dry-run", "--report", report}, extra...)
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", extra, code, out, errOut)
		}
		if got := reportDest(readReport(t, report))["Work"]; got != "INBOX.Work" {
			t.Errorf("%v: dry run names the destination of Work %q, want INBOX.Work", extra, got)
		}
	}
}
