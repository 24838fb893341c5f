package migrate_test

import (
	"slices"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// A message moved between source folders arrives as a move at the
// destination (UID MOVE; UID COPY and UID EXPUNGE without MOVE), not as a
// second APPEND of its bytes: no Store call in that pass, and the
// destination message keeps a flag the user set there (the same message,
// moved), while --sync-deletions deletes nothing. On Dovecot with and
// without MOVE, and on Cyrus.
func TestMoveBetweenFoldersArrivesAsAMove(t *testing.T) {
	for _, c := range []struct {
		name string
		dst  func(t *testing.T) (*dovecottest.Server, func(string) string)
	}{
		{"dovecot", func(t *testing.T) (*dovecottest.Server, func(string) string) {
			return dovecottest.Start(t, dovecottest.Options{Separator: '.'}), func(f string) string { return f }
		}},
		{"dovecot without MOVE", func(t *testing.T) (*dovecottest.Server, func(string) string) {
			return dovecottest.Start(t, dovecottest.Options{Separator: '.', IMAPCapability: dovecottest.WithoutCaps("MOVE")}), func(f string) string { return f }
		}},
		{"cyrus", func(t *testing.T) (*dovecottest.Server, func(string) string) {
			cy := servertest.StartCyrus(t, servertest.Options{})
			return cy.Server, cy.Name
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
			var name func(string) string
			p.dst, name = c.dst(t)
			p.stores = &atomic.Int32{}
			p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(0)}, {Body: cutoverMessage(1)},
				{Body: cutoverMessage(2)}, {Folder: "Work", Body: cutoverMessage(3)}})
			opts := migrate.Options{SyncDeletions: true}
			if rep := p.run(t, opts); rep.Totals.Copied != 4 {
				t.Fatalf("first run: %+v", rep.Totals)
			}
			storeFlags(t, p.dst, "INBOX", 1, imap.StoreFlagsAdd, "$UserSetThis") // the user, at the destination
			uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
				var mv imap.UIDSet
				mv.AddNum(findUID(t, c, 1))
				if _, err := c.Move(mv, "Work").Wait(); err != nil {
					t.Fatal(err)
				}
			})
			p.stores.Store(0)
			rep := p.run(t, opts)
			if tt := rep.Totals; p.stores.Load() != 0 || tt.MovedAtDestination != 1 || tt.Copied != 0 || tt.DeletedAtDestination != 0 {
				t.Errorf("the pass after a move at the source: %d APPENDs, %+v; want no APPEND, 1 moved, nothing copied or deleted", p.stores.Load(), tt)
			}
			snap := p.dst.Snapshot(t, "alice")
			inbox, work := snap["INBOX"], snap[name("Work")]
			shas := func(ms []dovecottest.MessageState) []string {
				var out []string
				for _, m := range ms {
					out = append(out, m.SHA256)
				}
				slices.Sort(out)
				return out
			}
			want := func(ns ...int) []string {
				var out []string
				for _, n := range ns {
					out = append(out, sha(cutoverMessage(n)))
				}
				slices.Sort(out)
				return out
			}
			if !slices.Equal(shas(inbox), want(0, 2)) || !slices.Equal(shas(work), want(1, 3)) {
				t.Errorf("destination INBOX %d and Work %d messages; want messages 0 and 2, and 1 and 3", len(inbox), len(work))
			}
			if got := flagsByBody(t, p.dst, name("Work"))[sha(cutoverMessage(1))]; !slices.Contains(got, "$UserSetThis") {
				t.Errorf("the moved message has flags %q at the destination: not the one the user flagged (copied again?)", got)
			}
			if rep := p.run(t, opts); rep.Totals.Copied != 0 || rep.Totals.DeletedAtDestination != 0 || rep.Totals.MovedAtDestination != 0 {
				t.Errorf("the next pass: %+v, want nothing to do", rep.Totals)
			}
			// A copy between folders at the source is a copy: the original stays.
			uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
				var cp imap.UIDSet
				cp.AddNum(findUID(t, c, 0))
				if _, err := c.Copy(cp, "Work").Wait(); err != nil {
					t.Fatal(err)
				}
			})
			if rep := p.run(t, opts); rep.Totals.Copied != 1 || rep.Totals.MovedAtDestination != 0 || rep.Totals.DeletedAtDestination != 0 {
				t.Errorf("the pass after a copy at the source: %+v, want 1 copied, nothing moved or deleted", rep.Totals)
			}
			snap = p.dst.Snapshot(t, "alice")
			if !slices.Equal(shas(snap["INBOX"]), want(0, 2)) || !slices.Equal(shas(snap[name("Work")]), want(0, 1, 3)) {
				t.Errorf("after a copy at the source: destination INBOX %d and Work %d messages; want 0 and 2, and 0, 1 and 3", len(snap["INBOX"]), len(snap[name("Work")]))
			}
		})
	}
}
