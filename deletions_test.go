package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// Deleting more messages of a folder than one command's 1,000 UIDs, at the
// destination (--sync-deletions) and at the source (--delete-source). Each
// UID EXPUNGE went out with its UID STORE \Deleted, taken to run after it;
// Dovecot ran them side by side, and an EXPUNGE that ran first expunged
// nothing, with OK. --sync-deletions deleted 1,000 of 1,500 messages
// expunged at the source, reported 1,500 and forgot them all, so no rerun
// deleted the rest (the million-message delta benchmark: INBOX 297,211
// messages, want 296,211). The whole folder is compared, byte for byte.
func TestDeletionsOfMoreThanOneBatch(t *testing.T) {
	t.Parallel()
	seed := func(t *testing.T, srv *dovecottest.Server) {
		var msgs []dovecottest.SeedMessage
		for i := range 3000 {
			msgs = append(msgs, dovecottest.SeedMessage{Folder: "INBOX", Flags: []string{`\Seen`},
				Body: []byte(fmt.Sprintf("Message-ID: <%d@batches>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))})
		}
		srv.Seed(t, "alice", msgs)
	}
	noneDeleted := func(t *testing.T, s dovecottest.Snapshot, where string) {
		for _, m := range s["INBOX"] {
			if slices.Contains(m.Flags, `\Deleted`) {
				t.Fatalf("%s: UID %d is marked \\Deleted and was not expunged", where, m.UID)
			}
		}
	}
	t.Run("sync-deletions", func(t *testing.T) {
		t.Parallel()
		p := newPair(t)
		seed(t, p.src)
		report := filepath.Join(t.TempDir(), "report.json")
		args := p.args("--sync-deletions", "--report", report)
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("first copy: exit %d\n%s\n%s", code, out, errOut)
		}
		c := p.src.Client(t, "alice")
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		var gone imap.UIDSet // all but every tenth: three commands of UIDs
		for u := 1; u <= 3000; u++ {
			if u%10 != 0 {
				gone.AddNum(imap.UID(u))
			}
		}
		if err := c.Store(gone, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.UIDExpunge(gone).Close(); err != nil {
			t.Fatal(err)
		}
		c.Close()
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("delta: exit %d\n%s\n%s", code, out, errOut)
		}
		rep := readReport(t, report)
		if rep.Totals.DeletedAtDestination != 2700 {
			t.Errorf("deleted %d at the destination, want 2700", rep.Totals.DeletedAtDestination)
		}
		src, dst := p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice")
		noneDeleted(t, dst, "destination")
		sameContent(t, src, dst, rep)
	})
	t.Run("delete-source", func(t *testing.T) {
		t.Parallel()
		p := newPair(t)
		seed(t, p.src)
		before := p.src.Snapshot(t, "alice")
		report := filepath.Join(t.TempDir(), "report.json")
		if code, out, errOut := mailferry(t, p.args("--delete-source", "--report", report)...); code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		rep := readReport(t, report)
		src := p.src.Snapshot(t, "alice")
		noneDeleted(t, src, "source")
		if rep.Totals.DeletedAtSource != 3000 || len(src["INBOX"]) != 0 {
			t.Errorf("deleted %d at the source, %d left there; want all 3000 deleted", rep.Totals.DeletedAtSource, len(src["INBOX"]))
		}
		sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
	})
}
