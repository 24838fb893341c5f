package main

// Workers creating destination folders side by side crash Dovecot 2.3.19
// sessions ("dovecot.list.index.log ... Resource deadlock avoided"), and a
// folder made in the crash may then be missing from Dovecot's LIST, its
// messages invisible to mail programs (the shared-folders test failed so in
// CI). The run creates the folders first, on one connection
// (migrate/createfirst.go). The crash depends on timing (an experiment of
// four sessions each creating a folder at once crashed 24 times in 60
// rounds; mailferry's staggered workers did not crash it in 10 runs of this
// test before the fix), so this is a guard on real Dovecot: it fails when a
// session crashes or LIST misses a folder. The mechanism is pinned by
// migrate's TestNewFoldersCreatedBeforeTheWorkers.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

func TestDovecotFoldersCreatedFirst(t *testing.T) {
	t.Parallel()
	src := dovecottest.Start(t, dovecottest.Options{})
	var msgs []dovecottest.SeedMessage
	var names []string
	for i := 0; i < 16; i++ {
		name := fmt.Sprintf("Project%02d/Notes", i)
		names = append(names, name)
		msgs = append(msgs, dovecottest.SeedMessage{Folder: name, Body: []byte(fmt.Sprintf(
			"From: a@example.org\r\nMessage-ID: <cf-%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))})
	}
	src.Seed(t, "alice", msgs)
	want := src.Snapshot(t, "alice")
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	// Three fresh destinations: a crash is likely, not certain, in one.
	for round := 0; round < 3; round++ {
		dst := dovecottest.Start(t, dovecottest.Options{})
		setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
		code, out, errOut := mailferry(t, "migrate", "imap://alice@"+src.IMAPAddr(), "imap://alice@"+dst.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never", "--jobs", "4")
		if code != 0 {
			t.Fatalf("round %d: exit %d\n%s\n%s", round, code, out, errOut)
		}
		if log := dst.LogTail(200); strings.Contains(log, "Panic:") {
			t.Errorf("round %d: a Dovecot session crashed during the run:\n%s", round, log)
		}
		got := dst.Snapshot(t, "alice")
		for _, name := range names {
			if a, b := keys(got[name]), keys(want[name]); strings.Join(a, " ") != strings.Join(b, " ") {
				t.Errorf("round %d: LIST at the destination shows %q with %d messages, want %d", round, name, len(a), len(b))
			}
		}
		dst.Stop()
	}
}
