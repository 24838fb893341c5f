package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// sourceServer is a source for the archive tests and its spelling of a
// folder name.
type sourceServer func(t *testing.T) (*dovecottest.Server, func(string) string)

// The cutover into an archive: flags changed at the source after the first
// run reach the archive (a Maildir file is renamed, keeping its unique
// name; an mbox file is left as written) as flags records appended to the
// manifest, a message expunged at the source gets a "gone" record and
// stays, nothing already in the manifest is rewritten, verify passes and
// counts the records, SHA256SUMS still checks with sha256sum, and the
// archive read back gives the new flags. From Dovecot with and without
// CONDSTORE, and from Cyrus.
func TestArchiveRecordsFlagsAndGone(t *testing.T) {
	t.Parallel()
	dovecot := func(caps string) sourceServer {
		return func(t *testing.T) (*dovecottest.Server, func(string) string) {
			return dovecottest.Start(t, dovecottest.Options{Separator: '/', IMAPCapability: caps}), func(f string) string { return f }
		}
	}
	cyrus := func(t *testing.T) (*dovecottest.Server, func(string) string) {
		cy := servertest.StartCyrus(t, servertest.Options{})
		return cy.Server, cy.Name
	}
	for _, c := range []struct {
		name, format string
		src          sourceServer
	}{
		{"maildir", "maildir", dovecot("")},
		{"mbox", "mbox", dovecot("")},
		{"maildir without condstore", "maildir", dovecot(dovecottest.WithoutCaps("CONDSTORE", "QRESYNC"))},
		{"mbox from cyrus", "mbox", cyrus},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, name := c.src(t)
			testArchiveRecords(t, c.format, src, name)
		})
	}
}

func archiveMessage(n int) []byte {
	return []byte(fmt.Sprintf("Message-ID: <archive-cutover-%d@example.com>\r\nSubject: %d\r\n\r\nbody %d\r\n", n, n, n))
}

func testArchiveRecords(t *testing.T, format string, src *dovecottest.Server, name func(string) string) {
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: archiveMessage(0)}, {Body: archiveMessage(1)},
		{Body: archiveMessage(2), Flags: []string{`\Seen`}}, {Body: archiveMessage(3)}})
	src.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: name("Work"), Body: archiveMessage(4)}})
	dir := filepath.Join(t.TempDir(), "archive")
	state := t.TempDir()
	args := []string{"archive", "imap://alice@" + src.IMAPAddr(), dir, "--format", format,
		"--src-tls", "none", "--state-dir", state, "--progress", "never"}
	if code, out, errOut := mailferry(t, args...); code != 0 {
		t.Fatalf("archive: exit %d\n%s\n%s", code, out, errOut)
	}
	manifest := func() []byte {
		b, err := os.ReadFile(filepath.Join(dir, archive.ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := manifest()
	mboxBefore := mboxSums(t, dir)

	c := src.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(uid imap.UID, op imap.StoreFlagsOp, f imap.Flag) {
		if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: []imap.Flag{f}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	store(1, imap.StoreFlagsAdd, imap.FlagFlagged)
	store(2, imap.StoreFlagsAdd, "$Label1")
	store(3, imap.StoreFlagsDel, imap.FlagSeen)
	store(4, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.UIDExpunge(imap.UIDSetNum(4)).Close(); err != nil {
		t.Fatal(err)
	}

	report := filepath.Join(t.TempDir(), "rerun.json")
	code, out, errOut := mailferry(t, append(args, "--report", report)...)
	if code != 0 {
		t.Fatalf("archive rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.FlagsUpdated != 3 || r.Totals.GoneAtSource != 1 || r.Totals.Copied != 0 {
		t.Errorf("archive rerun: %+v, want 3 flags updated, 1 gone at the source, nothing copied\n%s", r.Totals, out)
	}
	after := manifest()
	if !bytes.HasPrefix(after, before) {
		t.Errorf("the manifest was rewritten, not appended to")
	}
	var kinds []string
	for _, e := range manifestEntries(t, dir)[5:] {
		kinds = append(kinds, e.Record)
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, []string{"flags", "flags", "flags", "gone"}) {
		t.Errorf("records appended: %q, want three flags and one gone", kinds)
	}
	if format == "maildir" {
		flagged, labelled := "", ""
		for _, e := range manifestEntries(t, dir) {
			if e.Record == "flags" && slices.Contains(e.Flags, `\Flagged`) {
				flagged = e.File
			}
			if e.Record == "flags" && slices.Contains(e.Flags, "$Label1") {
				labelled = e.File
			}
		}
		if !strings.HasSuffix(labelled, ":2,a") {
			t.Errorf("the message given $Label1 is in %q, want the keyword's dovecot-keywords letter: :2,a", labelled)
		}
		if !strings.HasSuffix(flagged, ":2,F") {
			t.Errorf("the flagged message's file is %q, want its unique name with the info suffix :2,F", flagged)
		} else if _, err := os.Stat(filepath.Join(dir, flagged)); err != nil {
			t.Errorf("the flags record names %s: %v", flagged, err)
		}
		sum := exec.Command("sha256sum", "--quiet", "-c", archive.SumsFile)
		sum.Dir = dir
		if out, err := sum.CombinedOutput(); err != nil {
			if _, lerr := exec.LookPath("sha256sum"); lerr == nil {
				t.Errorf("sha256sum -c %s after the renames: %v\n%s", archive.SumsFile, err, out)
			}
		}
	} else if got := mboxSums(t, dir); !maps.Equal(got, mboxBefore) {
		t.Errorf("the mbox files changed: they are append-only and the flags live in the manifest")
	}
	code, out, errOut = mailferry(t, "verify", dir)
	if code != 0 || !strings.Contains(out, "records: 3 flag changes, 1 message gone at the source") {
		t.Errorf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut := mailferry(t, append(args, "--report", report)...); code != 0 {
		t.Fatalf("second rerun: exit %d\n%s\n%s", code, out, errOut)
	} else if r := readReport(t, report); r.Totals.FlagsUpdated != 0 || r.Totals.GoneAtSource != 0 {
		t.Errorf("a rerun with nothing changed: %+v, want no record", r.Totals)
	}
	// The archive read back has the new flags and still the expunged message.
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.'})
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	if code, out, errOut := mailferry(t, "migrate", format+":"+dir, "imap://alice@"+dst.IMAPAddr(), "--dst-tls", "none",
		"--state-dir", t.TempDir(), "--progress", "never"); code != 0 {
		t.Fatalf("migrate the archive back: exit %d\n%s\n%s", code, out, errOut)
	}
	got := map[string][]string{}
	for _, m := range dst.Snapshot(t, "alice")["INBOX"] {
		got[m.SHA256] = m.Flags
	}
	want := map[int][]string{0: {`\Flagged`}, 1: {"$Label1"}, 2: {}, 3: {}}
	for n, fl := range want {
		g, ok := got[fmt.Sprintf("%x", sha256.Sum256(archiveMessage(n)))]
		if !ok || !slices.Equal(append([]string{}, g...), fl) {
			t.Errorf("message %d read back from the archive: present %v, flags %q; want %q", n, ok, g, fl)
		}
	}
}

// mboxSums is the SHA-256 of each .mbox file under dir.
func mboxSums(t *testing.T, dir string) map[string][32]byte {
	out := map[string][32]byte{}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".mbox") {
			b, _ := os.ReadFile(p)
			out[p] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}
