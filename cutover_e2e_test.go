package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// The command line of the cutover: --sync-deletions with --dry-run shows
// what would go, the summary and the report count flags updated and
// deletions at the destination, and --delete-source cannot be combined.
func TestCLISyncDeletionsAndFlags(t *testing.T) {
	p := newPair(t)
	body := func(n int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <cli-cutover-%d@example.com>\r\nSubject: %d\r\n\r\nbody\r\n", n, n))
	}
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: body(1)}, {Body: body(2)}, {Body: body(3)}})
	if code, out, errOut := mailferry(t, p.args()...); code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	c := p.src.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var first, second imap.UIDSet
	first.AddNum(1)
	second.AddNum(2)
	if err := c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(second, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(second).Close(); err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := mailferry(t, p.args("--sync-deletions", "--delete-source")...); code != 2 || !strings.Contains(errOut, "--sync-deletions") {
		t.Errorf("--sync-deletions with --delete-source: exit %d, %q; want a usage error", code, errOut)
	}
	code, out, errOut := mailferry(t, p.args("--sync-deletions", "--dry-run")...)
	if code != 0 || !strings.Contains(out, "would delete 1 messages at the destination") || !strings.Contains(out, "would update the flags of 1 messages") {
		t.Errorf("--dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 3 {
		t.Fatalf("--dry-run changed the destination: %d messages", n)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut = mailferry(t, p.args("--sync-deletions", "--report", report)...)
	if code != 0 || !strings.Contains(out, "FLAGS UPDATED") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.FlagsUpdated != 1 || rep.Totals.DeletedAtDestination != 1 {
		t.Errorf("report totals %+v, want 1 flags updated and 1 deleted at the destination", rep.Totals)
	}
	snap := p.dst.Snapshot(t, "alice")["INBOX"]
	if len(snap) != 2 {
		t.Fatalf("destination INBOX holds %d messages, want 2", len(snap))
	}
	if !strings.Contains(strings.Join(snap[0].Flags, " "), `\Flagged`) {
		t.Errorf("first message has flags %q at the destination, want \\Flagged", snap[0].Flags)
	}
}
