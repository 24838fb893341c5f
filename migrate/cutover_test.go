package migrate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	mfimap "github.com/mailferry/mailferry/migrate/imap"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// cutoverPair is a source and a destination Dovecot with alice on both and
// one state file: the passes of a provider migration.
type cutoverPair struct {
	src, dst *dovecottest.Server
	state    string
	lists    *atomic.Int32 // when set, the source's List calls are counted
	refuse   string        // when set, the destination refuses every message for this folder
	srcVia   string        // when set, the address the source is reached at (a proxy)
	stores   *atomic.Int32 // when set, the destination's Store calls are counted
}

// refusingSink is the destination IMAP refusing every message for one
// folder (as a quota or size limit would).
type refusingSink struct {
	*mfimap.IMAP
	folder string
}

// MoveDest moves nothing: a destination that cannot move gets the copy.
func (r refusingSink) MoveDest(context.Context, formats.Folder, formats.Folder, []string) (map[string]string, error) {
	return nil, nil
}

// countingSink counts Store calls (APPENDs).
type countingSink struct {
	migrate.Sink
	n *atomic.Int32
}

func (c countingSink) Store(ctx context.Context, f formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	c.n.Add(1)
	return c.Sink.Store(ctx, f, m, size, body)
}

func (c countingSink) Unwrap() migrate.Sink { return c.Sink }

func (r refusingSink) Store(ctx context.Context, f formats.Folder, m formats.Message, size int64, body io.Reader) (string, error) {
	if f.Name == r.folder {
		return "", &migrate.MessageError{Err: errors.New("refused by the test")}
	}
	return r.IMAP.Store(ctx, f, m, size, body)
}

// countingSource counts List calls: a folder the no-op shortcut skips is
// never listed.
type countingSource struct {
	migrate.Source
	n *atomic.Int32
}

func (c countingSource) List(ctx context.Context, f formats.Folder) (uint32, []formats.Message, error) {
	c.n.Add(1)
	return c.Source.List(ctx, f)
}

func (c countingSource) Unwrap() migrate.Source { return c.Source }

func newCutoverPair(t *testing.T, srcOpts dovecottest.Options, dstOpts ...dovecottest.Options) *cutoverPair {
	t.Helper()
	dst := dovecottest.Options{Separator: '.'}
	if len(dstOpts) > 0 {
		dst = dstOpts[0]
	}
	return &cutoverPair{
		src:   dovecottest.Start(t, srcOpts),
		dst:   dovecottest.Start(t, dst),
		state: filepath.Join(t.TempDir(), "state.db"),
	}
}

func dialer(s *dovecottest.Server, via ...string) func(context.Context) (*mfimap.IMAP, error) {
	addr := s.IMAPAddr()
	if len(via) > 0 && via[0] != "" {
		addr = via[0]
	}
	return func(ctx context.Context) (*mfimap.IMAP, error) {
		return mfimap.DialIMAP(ctx, mailconn.ServerConfig{Addr: addr, User: "alice", Password: s.Users["alice"], TLS: mailconn.TLSNone})
	}
}

// run is one pass; it fails the test on an error.
func (p *cutoverPair) run(t *testing.T, opts migrate.Options) *migrate.Report {
	t.Helper()
	src, dst := dialer(p.src, p.srcVia), dialer(p.dst)
	opts.StatePath = p.state
	job := migrate.Job{SourceName: "src", DestName: "dst", Options: opts,
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			m, err := src(ctx)
			if err != nil {
				return nil, err
			}
			if p.lists != nil {
				return countingSource{m, p.lists}, nil
			}
			return m, nil
		},
		OpenSink: func(ctx context.Context) (migrate.Sink, error) {
			m, err := dst(ctx)
			if err != nil {
				return nil, err
			}
			if p.refuse != "" {
				return refusingSink{m, p.refuse}, nil
			}
			if p.stores != nil {
				return countingSink{m, p.stores}, nil
			}
			return m, nil
		},
	}
	rep, err := migrate.Run(context.Background(), job)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return rep
}

func cutoverMessage(n int) []byte {
	return []byte(fmt.Sprintf("Message-ID: <cutover-%d@example.com>\r\nDate: Mon, 2 Jan 2023 10:00:%02d +0000\r\nFrom: a@example.com\r\nSubject: message %d\r\n\r\nbody %d\r\n", n, n, n, n))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// flagsByBody maps the SHA-256 of each message of folder to its flags.
func flagsByBody(t *testing.T, s *dovecottest.Server, folder string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, m := range s.Snapshot(t, "alice")[folder] {
		if _, dup := out[m.SHA256]; dup {
			t.Fatalf("%s holds message %s twice", folder, m.SHA256[:8])
		}
		out[m.SHA256] = m.Flags
	}
	return out
}

// storeFlags runs UID STORE on the message of folder whose Message-ID is
// cutover-n, as a mail program would.
func storeFlags(t *testing.T, s *dovecottest.Server, folder string, n int, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	c := s.Client(t, "alice")
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	uid := findUID(t, c, n)
	var set imap.UIDSet
	set.AddNum(uid)
	if err := c.Store(set, &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

func findUID(t *testing.T, c *imapclient.Client, n int) imap.UID {
	t.Helper()
	data, err := c.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Message-ID", Value: fmt.Sprintf("<cutover-%d@example.com>", n)}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	uids := data.AllUIDs()
	if len(uids) != 1 {
		t.Fatalf("message %d: %d matches", n, len(uids))
	}
	return uids[0]
}

func TestFlagsFollowCondstore(t *testing.T) {
	testFlagsFollow(t, dovecottest.Options{Separator: '/'}, true)
}

func TestFlagsFollowWithoutCondstore(t *testing.T) {
	testFlagsFollow(t, dovecottest.Options{Separator: '/', IMAPCapability: dovecottest.WithoutCaps("CONDSTORE", "QRESYNC")}, false)
}

// Flags changed at the source after the first run reach the destination on
// the next (added, removed, keywords), and a flag the user set or removed at
// the destination meanwhile stays as the user left it.
func testFlagsFollow(t *testing.T, srcOpts dovecottest.Options, condstore bool) {
	p := newCutoverPair(t, srcOpts)
	p.lists = &atomic.Int32{}
	if got := p.src.Client(t, "alice").Caps().Has(imap.CapCondStore); got != condstore {
		t.Fatalf("source announces CONDSTORE: %v, want %v", got, condstore)
	}
	seed := [][]string{{`\Seen`}, nil, {"$Label1"}, {`\Flagged`}}
	var msgs []dovecottest.SeedMessage
	for i, f := range seed {
		msgs = append(msgs, dovecottest.SeedMessage{Body: cutoverMessage(i), Flags: f, Date: time.Unix(1700000000, 0)})
	}
	p.src.Seed(t, "alice", msgs)
	if rep := p.run(t, migrate.Options{}); rep.Totals.Copied != 4 || rep.Totals.FlagsUpdated != 0 {
		t.Fatalf("first run: %+v", rep.Totals)
	}
	// At the source, people read and flag.
	storeFlags(t, p.src, "INBOX", 0, imap.StoreFlagsDel, imap.FlagSeen)
	storeFlags(t, p.src, "INBOX", 0, imap.StoreFlagsAdd, imap.FlagAnswered)
	storeFlags(t, p.src, "INBOX", 1, imap.StoreFlagsAdd, imap.FlagFlagged, "$Label1")
	storeFlags(t, p.src, "INBOX", 2, imap.StoreFlagsDel, "$Label1")
	// At the destination, the user already works.
	storeFlags(t, p.dst, "INBOX", 3, imap.StoreFlagsDel, imap.FlagFlagged)
	storeFlags(t, p.dst, "INBOX", 1, imap.StoreFlagsAdd, "$UserKW")
	storeFlags(t, p.dst, "INBOX", 2, imap.StoreFlagsAdd, imap.FlagSeen)

	dry := p.run(t, migrate.Options{DryRun: true})
	if dry.Totals.FlagsUpdated != 3 {
		t.Errorf("--dry-run: flags_updated %d, want 3", dry.Totals.FlagsUpdated)
	}
	rep := p.run(t, migrate.Options{})
	if rep.Totals.FlagsUpdated != 3 || rep.Totals.Copied != 0 {
		t.Errorf("second run: %+v, want 3 flags updated and nothing copied", rep.Totals)
	}
	want := map[string][]string{
		sha(cutoverMessage(0)): {`\Answered`},
		sha(cutoverMessage(1)): {"$Label1", "$UserKW", `\Flagged`},
		sha(cutoverMessage(2)): {`\Seen`},
		sha(cutoverMessage(3)): {},
	}
	got := flagsByBody(t, p.dst, "INBOX")
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Errorf("message %s: destination flags %q, want %q", k[:8], got[k], w)
		}
	}
	// A third run with nothing changed changes nothing; then one more
	// change (UIDNEXT unchanged, only HIGHESTMODSEQ moved) still follows.
	p.lists.Store(0)
	if rep := p.run(t, migrate.Options{}); rep.Totals.FlagsUpdated != 0 || rep.Totals.Copied != 0 {
		t.Errorf("no-op run: %+v", rep.Totals)
	}
	// With CONDSTORE an unchanged folder is not even listed (the STATUS
	// of the run's start says so); without, each folder is listed once.
	if n, want := p.lists.Load(), map[bool]int32{true: 0, false: 1}[condstore]; n != want {
		t.Errorf("no-op run listed the source folder %d times, want %d", n, want)
	}
	storeFlags(t, p.src, "INBOX", 3, imap.StoreFlagsAdd, "$Forwarded")
	if rep := p.run(t, migrate.Options{}); rep.Totals.FlagsUpdated != 1 {
		t.Errorf("after one more change: flags_updated %d, want 1", rep.Totals.FlagsUpdated)
	}
	if got := flagsByBody(t, p.dst, "INBOX")[sha(cutoverMessage(3))]; !slices.Equal(got, []string{"$Forwarded"}) {
		t.Errorf("message 3: destination flags %q, want [$Forwarded]", got)
	}
}

// uidOp runs fn on a read-write connection with folder selected.
func uidOp(t *testing.T, s *dovecottest.Server, folder string, fn func(c *imapclient.Client)) {
	t.Helper()
	c := s.Client(t, "alice")
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	fn(c)
}

// --sync-deletions removes at the destination exactly what was expunged at
// the source and mailferry had copied; a message moved between source
// folders ends in its new folder; what the user added at the destination,
// and a message mailferry only matched there, stay.
func TestSyncDeletions(t *testing.T) {
	p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
	var msgs []dovecottest.SeedMessage
	for i := 0; i < 5; i++ {
		msgs = append(msgs, dovecottest.SeedMessage{Body: cutoverMessage(i), Date: time.Unix(1700000000, 0)})
	}
	msgs = append(msgs, dovecottest.SeedMessage{Folder: "Work", Body: cutoverMessage(10), Date: time.Unix(1700000000, 0)})
	p.src.Seed(t, "alice", msgs)
	// Message 4 is at the destination already (mailferry matches it, never
	// copies it); message 20 only there (the user's).
	p.dst.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(4)}, {Body: cutoverMessage(20)}})
	if rep := p.run(t, migrate.Options{SyncDeletions: true}); rep.Totals.Copied != 5 || rep.Totals.DeletedAtDestination != 0 {
		t.Fatalf("first run: %+v", rep.Totals)
	}
	p.dst.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(21)}}) // added later by the user
	// At the source: 1 expunged, 2 moved to Work, 4 (matched) expunged.
	uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
		var del imap.UIDSet
		del.AddNum(findUID(t, c, 1), findUID(t, c, 4))
		if err := c.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := c.UIDExpunge(del).Close(); err != nil {
			t.Fatal(err)
		}
		var mv imap.UIDSet
		mv.AddNum(findUID(t, c, 2))
		if _, err := c.Move(mv, "Work").Wait(); err != nil {
			t.Fatal(err)
		}
	})
	before := p.dst.Snapshot(t, "alice")
	dry := p.run(t, migrate.Options{SyncDeletions: true, DryRun: true})
	if dry.Totals.DeletedAtDestination != 2 {
		t.Errorf("--dry-run: deleted_at_destination %d, want 2", dry.Totals.DeletedAtDestination)
	}
	if after := p.dst.Snapshot(t, "alice"); !sameFolders(before, after) {
		t.Errorf("--dry-run changed the destination")
	}
	// Without the flag nothing is deleted.
	if rep := p.run(t, migrate.Options{}); rep.Totals.DeletedAtDestination != 0 {
		t.Errorf("without --sync-deletions: deleted %d", rep.Totals.DeletedAtDestination)
	}
	rep := p.run(t, migrate.Options{SyncDeletions: true})
	for _, f := range rep.Folders {
		want := map[string]int{"INBOX": 2}[f.Source]
		if f.DeletedAtDestination != want {
			t.Errorf("%s: deleted_at_destination %d, want %d", f.Source, f.DeletedAtDestination, want)
		}
	}
	snap := p.dst.Snapshot(t, "alice")
	wantIn := map[string][]int{"INBOX": {0, 3, 4, 20, 21}, "Work": {2, 10}}
	for folder, ns := range wantIn {
		var want []string
		for _, n := range ns {
			want = append(want, sha(cutoverMessage(n)))
		}
		var got []string
		for _, m := range snap[folder] {
			got = append(got, m.SHA256)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("destination %s: %d messages %v, want %d %v", folder, len(got), short(got), len(want), short(want))
		}
	}
	// And the next run has nothing left to do.
	if rep := p.run(t, migrate.Options{SyncDeletions: true}); rep.Totals.DeletedAtDestination != 0 || rep.Totals.Copied != 0 {
		t.Errorf("rerun: %+v", rep.Totals)
	}
}

func short(hs []string) string {
	var out []string
	for _, h := range hs {
		out = append(out, h[:8])
	}
	return strings.Join(out, ",")
}

func sameFolders(a, b dovecottest.Snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, ms := range a {
		if len(b[k]) != len(ms) {
			return false
		}
		for i := range ms {
			if ms[i].UID != b[k][i].UID || ms[i].SHA256 != b[k][i].SHA256 || !slices.Equal(ms[i].Flags, b[k][i].Flags) {
				return false
			}
		}
	}
	return true
}

// What --delete-source removed at the source is not "gone at the source"
// for a later --sync-deletions: the only copy left is the destination's.
func TestSyncDeletionsAfterDeleteSourceKeepsTheCopies(t *testing.T) {
	p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
	var msgs []dovecottest.SeedMessage
	for i := 0; i < 3; i++ {
		msgs = append(msgs, dovecottest.SeedMessage{Body: cutoverMessage(i)})
	}
	p.src.Seed(t, "alice", msgs)
	if rep := p.run(t, migrate.Options{DeleteSource: true}); rep.Totals.DeletedAtSource != 3 {
		t.Fatalf("--delete-source: %+v", rep.Totals)
	}
	rep := p.run(t, migrate.Options{SyncDeletions: true})
	if got := len(p.dst.Snapshot(t, "alice")["INBOX"]); got != 3 || rep.Totals.DeletedAtDestination != 0 {
		t.Fatalf("after --sync-deletions the destination holds %d of 3 messages (deleted_at_destination %d)", got, rep.Totals.DeletedAtDestination)
	}
}

// A message moved between source folders, where the destination does not
// move it (refusingSink moves nothing), is deleted from its old folder at
// the destination only once it is in the new one: when the copy into the
// new folder fails, nothing is deleted in that run.
func TestSyncDeletionsWaitsForTheMovedCopy(t *testing.T) {
	p := newCutoverPair(t, dovecottest.Options{Separator: '/'})
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(0)}, {Body: cutoverMessage(1)}, {Folder: "Work", Body: cutoverMessage(2)}})
	p.run(t, migrate.Options{SyncDeletions: true})
	uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
		var mv imap.UIDSet
		mv.AddNum(findUID(t, c, 1))
		if _, err := c.Move(mv, "Work").Wait(); err != nil {
			t.Fatal(err)
		}
	})
	p.refuse = "Work"
	rep := p.run(t, migrate.Options{SyncDeletions: true})
	if rep.Totals.Failed != 1 || rep.Totals.DeletedAtDestination != 0 {
		t.Errorf("with the copy into Work refused: %+v, want 1 failed and nothing deleted", rep.Totals)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 2 {
		t.Errorf("the destination INBOX holds %d messages, want 2: the moved message must stay until its new copy exists", n)
	}
	p.refuse = ""
	// Now it is moved at the destination (moves_test.go).
	if rep := p.run(t, migrate.Options{SyncDeletions: true}); rep.Totals.MovedAtDestination != 1 || rep.Totals.Copied != 0 || rep.Totals.DeletedAtDestination != 0 {
		t.Errorf("next run: %+v, want 1 moved, nothing copied or deleted", rep.Totals)
	}
	snap := p.dst.Snapshot(t, "alice")
	if len(snap["INBOX"]) != 1 || len(snap["Work"]) != 2 {
		t.Errorf("destination INBOX %d, Work %d messages; want 1 and 2", len(snap["INBOX"]), len(snap["Work"]))
	}
}

// A destination that does not announce UIDPLUS: flags still follow, and
// --sync-deletions only marks what it removes \Deleted (a UID EXPUNGE
// cannot be sent, and a plain EXPUNGE would remove what others marked), and
// the report says so. (Dovecot still answers APPENDUID, so mailferry knows
// its UIDs.)
func TestCutoverDestinationWithoutUIDPLUSOnlyMarks(t *testing.T) {
	p := newCutoverPair(t, dovecottest.Options{Separator: '/'},
		dovecottest.Options{Separator: '.', IMAPCapability: dovecottest.WithoutCaps("UIDPLUS")})
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: cutoverMessage(0)}, {Body: cutoverMessage(1)}})
	if rep := p.run(t, migrate.Options{SyncDeletions: true}); rep.Totals.Copied != 2 {
		t.Fatalf("first run: %+v", rep.Totals)
	}
	storeFlags(t, p.src, "INBOX", 0, imap.StoreFlagsAdd, imap.FlagFlagged)
	uidOp(t, p.src, "INBOX", func(c *imapclient.Client) {
		var del imap.UIDSet
		del.AddNum(findUID(t, c, 1))
		c.Store(del, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
		if err := c.UIDExpunge(del).Close(); err != nil {
			t.Fatal(err)
		}
	})
	rep := p.run(t, migrate.Options{SyncDeletions: true})
	if rep.Totals.FlagsUpdated != 1 || rep.Totals.DeletedAtDestination != 1 || !rep.DestMarkedOnly {
		t.Errorf("second run: %+v, marked only %v; want 1 flags updated, 1 deleted, marked only", rep.Totals, rep.DestMarkedOnly)
	}
	got := flagsByBody(t, p.dst, "INBOX")
	if len(got) != 2 || !slices.Equal(got[sha(cutoverMessage(0))], []string{`\Flagged`}) ||
		!slices.Equal(got[sha(cutoverMessage(1))], []string{`\Deleted`}) {
		t.Errorf("destination: %v, want message 0 \\Flagged and message 1 still there, marked \\Deleted", got)
	}
}
