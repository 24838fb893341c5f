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

// TestLedgerRoomHoldsOneLargeFolderAtATime: with four workers and room
// for less than two folders' ledgers, a delta pass (flags changed and
// messages expunged in every folder) holds one folder's ledgers at a time,
// with --sync-deletions and without (where the source mark counts no
// messages, and the room once counted the destination's alone), and still
// carries every change: the destination then holds what the source holds,
// message for message (SHA-256) with the same flags (without
// --sync-deletions, and the expunged messages too), and a rerun does
// nothing. With the room as it is, the workers hold several at once.
func TestLedgerRoomHoldsOneLargeFolderAtATime(t *testing.T) {
	folders := []string{"INBOX", "Work", "Lists", "Archive"}
	for _, c := range []struct {
		name  string
		sync  bool
		room  int64 // each folder's ledgers: 20 source entries (18 listed), 20 destination
		alone bool
	}{
		{"room for one folder, with --sync-deletions", true, 45, true},
		{"room for one folder, without --sync-deletions", false, 45, true},
		{"room as it is", true, 500_000, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
			var seed []dovecottest.SeedMessage
			for i := range 80 {
				seed = append(seed, dovecottest.SeedMessage{Folder: folders[i%4], Flags: []string{`\Seen`},
					Date: time.Unix(1600000000+int64(i)*60, 0), Body: cutoverMessage(i)})
			}
			p.src.Seed(t, "alice", seed)
			opts := migrate.Options{SyncDeletions: c.sync, Jobs: 4}
			if rep := p.run(t, opts); rep.Totals.Copied != 80 {
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
			before := p.dst.Snapshot(t, "alice")
			var mu sync.Mutex
			peak, takes := 0, 0
			defer migrate.SetLedgerRoom(c.room, func(holders int) {
				mu.Lock()
				defer mu.Unlock()
				peak, takes = max(peak, holders), takes+1
			})()
			rep := p.run(t, opts)
			wantDeleted := map[bool]int{true: 8}[c.sync]
			if rep.Totals.DeletedAtDestination != wantDeleted || rep.Totals.Copied != 0 {
				t.Errorf("delta pass: %+v, want %d deleted at the destination, none copied", rep.Totals, wantDeleted)
			}
			if takes != 4 {
				t.Errorf("%d passes took room, want 4 (one for each folder)", takes)
			}
			if c.alone && peak != 1 {
				t.Errorf("%d passes held room at once, want 1", peak)
			}
			t.Logf("room for %d entries: at most %d passes held room at once", c.room, peak)
			src, dst := p.src.Snapshot(t, "alice"), p.dst.Snapshot(t, "alice")
			for _, f := range folders {
				want := contents(src[f])
				if !c.sync { // the expunged messages stay, with their flags
					for _, m := range before[f] {
						if m.UID == 4 || m.UID == 5 {
							want = append(want, contents([]dovecottest.MessageState{m})...)
						}
					}
					slices.Sort(want)
				}
				if got := contents(dst[f]); !slices.Equal(got, want) {
					t.Errorf("%s: the destination holds %d messages %v, want %d %v", f, len(got), got, len(want), want)
				}
			}
			if rep := p.run(t, opts); rep.Totals.Copied != 0 || rep.Totals.DeletedAtDestination != 0 {
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
