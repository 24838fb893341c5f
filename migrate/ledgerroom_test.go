package migrate_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// TestLedgerRoomHoldsOneLargeFolderAtATime: with four workers and folders
// whose ledgers are each larger than the room the passes share, a delta
// pass (flags changed and messages expunged in every folder, with
// --sync-deletions) holds one folder's ledgers at a time, and still
// carries every change: the destination then holds what the source holds,
// message for message (SHA-256) with the same flags, and a rerun does
// nothing. With the room as it is, the workers hold several at once.
func TestLedgerRoomHoldsOneLargeFolderAtATime(t *testing.T) {
	folders := []string{"INBOX", "Work", "Lists", "Archive"}
	for _, small := range []bool{true, false} {
		t.Run(map[bool]string{true: "room for less than a folder", false: "room as it is"}[small], func(t *testing.T) {
			p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
			var seed []dovecottest.SeedMessage
			for i := range 80 {
				seed = append(seed, dovecottest.SeedMessage{Folder: folders[i%4], Flags: []string{`\Seen`},
					Date: time.Unix(1600000000+int64(i)*60, 0), Body: cutoverMessage(i)})
			}
			p.src.Seed(t, "alice", seed)
			if rep := p.run(t, migrate.Options{SyncDeletions: true, Jobs: 4}); rep.Totals.Copied != 80 {
				t.Fatalf("first run: %+v", rep.Totals)
			}
			for _, f := range folders {
				uidOp(t, p.src, f, func(c *imapclient.Client) {
					var flag, del imap.UIDSet
					flag.AddRange(1, 3)
					del.AddNum(4, 5)
					if err := c.Store(flag, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
						t.Fatal(err)
					}
					if err := c.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
						t.Fatal(err)
					}
					if err := c.UIDExpunge(del).Close(); err != nil {
						t.Fatal(err)
					}
				})
			}
			var mu sync.Mutex
			peak, takes := 0, 0
			entries := int64(500_000)
			if small {
				entries = 10 // each folder's ledgers: 20 source entries, 20 destination
			}
			defer migrate.SetLedgerRoom(entries, func(holders int) {
				mu.Lock()
				defer mu.Unlock()
				peak, takes = max(peak, holders), takes+1
			})()
			rep := p.run(t, migrate.Options{SyncDeletions: true, Jobs: 4})
			if rep.Totals.DeletedAtDestination != 8 || rep.Totals.Copied != 0 {
				t.Errorf("delta pass: %+v, want 8 deleted at the destination, none copied", rep.Totals)
			}
			if takes != 4 {
				t.Errorf("%d passes took room, want 4 (one for each folder)", takes)
			}
			if small && peak != 1 {
				t.Errorf("%d passes held room at once, want 1", peak)
			}
			t.Logf("room for %d entries: at most %d passes held room at once", entries, peak)
			src, dst := p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice")
			for _, f := range folders {
				got, want := contents(dst[f]), contents(src[f])
				if !slices.Equal(got, want) {
					t.Errorf("%s: the destination holds %d messages %v, the source %d %v", f, len(got), got, len(want), want)
				}
			}
			if rep := p.run(t, migrate.Options{SyncDeletions: true, Jobs: 4}); rep.Totals.Copied != 0 || rep.Totals.DeletedAtDestination != 0 {
				t.Errorf("rerun: %+v", rep.Totals)
			}
		})
	}
}

// contents is a folder's messages as their SHA-256 and flags, sorted.
func contents(ms []dovecottest.MessageState) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s %s", m.SHA256[:12], strings.Join(m.Flags, ",")))
	}
	slices.Sort(out)
	return out
}
