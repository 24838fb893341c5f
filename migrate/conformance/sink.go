package conformance

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// Endpoint is a session that is both a Source and a Sink (IMAP, the
// archive stores): how the suite reads back what a Sink stored.
type Endpoint interface {
	migrate.Source
	migrate.Sink
}

// SinkHarness is what TestSink needs to know about one Sink implementation.
type SinkHarness struct {
	// Open makes a new, empty destination and returns a Sink on it. The
	// suite closes the Sink.
	Open func(t *testing.T) SinkInstance
	// Keeps says what the destination keeps besides the bytes.
	Keeps Keeps
	// Served maps the bytes stored to the bytes served back; nil means
	// unchanged.
	Served func([]byte) []byte
	// CompareIDs orders stable IDs; nil means the package's CompareIDs.
	CompareIDs func(a, b string) int
	// InexactListSize: see SourceHarness.
	InexactListSize bool
}

// SinkInstance is one destination made by SinkHarness.Open.
type SinkInstance struct {
	Sink migrate.Sink
	// Reopen opens a new session on the same destination, after Sink was
	// closed, to read back what it stored.
	Reopen func(t *testing.T) Endpoint
}

func (h SinkHarness) served(b []byte) []byte {
	if h.Served == nil {
		return b
	}
	return h.Served(b)
}

// TestSink runs the Sink conformance tests.
func TestSink(t *testing.T, h SinkHarness) {
	t.Run("Ensure", func(t *testing.T) { testEnsure(t, h) })
	t.Run("StoreAndReadBack", func(t *testing.T) { testStore(t, h) })
}

// testEnsure: missing parents are created, the path comes back, and a
// second Ensure (of the folder, or of a parent) changes nothing.
func testEnsure(t *testing.T, h SinkHarness) {
	ctx := context.Background()
	inst := h.Open(t)
	sink := inst.Sink
	defer sink.Close()
	deep := []string{"Archive", "2024", "Q1"}
	f1, err := sink.Ensure(ctx, deep)
	if err != nil {
		t.Fatalf("Ensure %q: %v", deep, err)
	}
	if !slices.Equal(f1.Path, deep) || f1.Name == "" {
		t.Errorf("Ensure %q returned Path %q, Name %q", deep, f1.Path, f1.Name)
	}
	f2, err := sink.Ensure(ctx, deep)
	if err != nil {
		t.Fatalf("second Ensure %q: %v", deep, err)
	}
	if f2.Name != f1.Name || !slices.Equal(f2.Path, f1.Path) {
		t.Errorf("second Ensure returned %q (%q), first %q (%q)", f2.Name, f2.Path, f1.Name, f1.Path)
	}
	for _, p := range [][]string{{"Archive"}, {"INBOX"}, {"Empty"}} {
		if _, err := sink.Ensure(ctx, p); err != nil {
			t.Errorf("Ensure %q: %v", p, err)
		}
	}
	folders, err := sink.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	checkFolders(t, folders, []Folder{{Path: []string{"INBOX"}}, {Path: []string{"Archive"}}, {Path: deep}, {Path: []string{"Empty"}}})
	if !hasFolder(folders, []string{"Archive", "2024"}) {
		t.Errorf("Ensure %q did not create the parent Archive/2024", deep)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ep := inst.Reopen(t)
	defer ep.Close()
	folders, err = ep.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders in a new session: %v", err)
	}
	for _, f := range folders {
		if slices.Equal(f.Path, []string{"Empty"}) {
			_, msgs, err := ep.List(ctx, f)
			if err != nil || len(msgs) != 0 {
				t.Errorf("List of an empty folder: %d messages, error %v; want none and no error", len(msgs), err)
			}
			if err := ep.Index(ctx, f, func(string) bool { return false }, func(id string, _ formats.Key) error {
				t.Errorf("Index of an empty folder passed %q", id)
				return nil
			}); err != nil {
				t.Errorf("Index of an empty folder: %v", err)
			}
		}
	}
	if !hasFolder(folders, deep) {
		t.Errorf("folder %q not there in a new session", deep)
	}
}

func hasFolder(fs []formats.Folder, p []string) bool {
	return slices.ContainsFunc(fs, func(f formats.Folder) bool { return slices.Equal(f.Path, p) })
}

// stored is one message given to Store and the ID it got.
type stored struct {
	msg Message
	id  string
}

// testStore stores the standard messages into INBOX and a subfolder (one
// with size -1), makes them durable as the sink requires, closes it, and
// reads them back in a new session.
func testStore(t *testing.T, h SinkHarness) {
	ctx := context.Background()
	inst := h.Open(t)
	sink := inst.Sink
	defer sink.Close()
	paths := [][]string{{"INBOX"}, {"Lists", "go-nuts"}}
	var all [2][]stored
	for fi, p := range paths {
		f, err := sink.Ensure(ctx, p)
		if err != nil {
			t.Fatalf("Ensure %q: %v", p, err)
		}
		msgs := Messages()
		if fi == 1 {
			msgs = msgs[1:4]
		}
		all[fi] = storeAll(t, sink, f, msgs)
	}
	if err := sink.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ep := inst.Reopen(t)
	defer ep.Close()
	folders, err := ep.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for fi, p := range paths {
		i := slices.IndexFunc(folders, func(f formats.Folder) bool { return slices.Equal(f.Path, p) })
		if i < 0 {
			t.Errorf("folder %q not listed in a new session", p)
			continue
		}
		t.Run("Folder="+formats.DisplayName(p), func(t *testing.T) {
			readBack(t, h, ep, folders[i], all[fi])
		})
	}
}

// storeAll stores msgs into f and returns them with their IDs, after
// Commit and Flush where the sink has them. The third message goes with
// size -1.
func storeAll(t *testing.T, sink migrate.Sink, f formats.Folder, msgs []Message) []stored {
	ctx := context.Background()
	out := make([]stored, len(msgs))
	var queued []int
	for i, m := range msgs {
		size := int64(len(m.Body))
		var body io.Reader = bytes.NewReader(m.Body)
		if i == 2 {
			size = -1
			body = io.NopCloser(body) // no Len, no Seek: a stream
		} else {
			// More bytes than size: Store must take exactly size of them.
			body = io.MultiReader(body, strings.NewReader("TRAILING GARBAGE"))
		}
		fm := formats.Message{ID: "src-" + m.Name, Size: size, Flags: m.Flags, Date: m.Date, SourceFolder: "Conformance"}
		id, err := sink.Store(ctx, f, fm, size, body)
		switch {
		case errors.Is(err, migrate.ErrQueued):
			queued = append(queued, i)
		case err != nil:
			t.Fatalf("Store %s: %v", m.Name, err)
		}
		out[i] = stored{msg: m, id: id}
	}
	if c, ok := migrate.As[migrate.Committer](sink); ok {
		res, err := c.Commit(ctx)
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if len(res) != len(queued) {
			t.Fatalf("Commit gave %d results for %d queued messages", len(res), len(queued))
		}
		for j, i := range queued {
			if res[j].Err != nil {
				t.Fatalf("Commit: %s refused: %v", msgs[i].Name, res[j].Err)
			}
			out[i].id = res[j].ID
		}
	} else if len(queued) > 0 {
		t.Fatalf("Store returned ErrQueued from a sink that is no Committer")
	}
	if fl, ok := migrate.As[migrate.Flusher](sink); ok {
		if err := fl.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	ids := map[string]bool{}
	for _, s := range out {
		if s.id == "" {
			t.Errorf("Store/Commit gave no ID for %s", s.msg.Name)
		} else if ids[s.id] {
			t.Errorf("ID %q given twice", s.id)
		}
		ids[s.id] = true
	}
	return out
}

// readBack checks Index, List and Fetch of one folder against what was
// stored into it.
func readBack(t *testing.T, h SinkHarness, ep Endpoint, f formats.Folder, st []stored) {
	ctx := context.Background()
	byID := map[string]Message{}
	for _, s := range st {
		byID[s.id] = s.msg
	}
	keys := map[string]formats.Key{}
	err := ep.Index(ctx, f, func(string) bool { return false }, func(id string, key formats.Key) error {
		if _, dup := keys[id]; dup {
			t.Errorf("Index passed %q twice", id)
		}
		keys[id] = key
		return nil
	})
	if err != nil {
		t.Fatalf("Index: %v", err)
	}
	for id, m := range byID {
		k, ok := keys[id]
		switch {
		case !ok:
			t.Errorf("Index lacks %q (%s), the ID Store gave", id, m.Name)
		case k != formats.IdentityKey(m.Body):
			t.Errorf("Index %q (%s): identity key differs from the stored message's", id, m.Name)
		}
	}
	if len(keys) != len(byID) {
		t.Errorf("Index passed %d messages, %d were stored", len(keys), len(byID))
	}
	// known: only what it reports false is passed.
	skip := map[string]bool{st[0].id: true, st[len(st)-1].id: true}
	var passed []string
	err = ep.Index(ctx, f, func(id string) bool { return skip[id] }, func(id string, _ formats.Key) error {
		passed = append(passed, id)
		return nil
	})
	if err != nil {
		t.Fatalf("Index with known: %v", err)
	}
	for _, id := range passed {
		if skip[id] {
			t.Errorf("Index passed %q, which known reports", id)
		}
	}
	if len(passed) != len(byID)-len(skip) {
		t.Errorf("Index with known passed %d, want %d", len(passed), len(byID)-len(skip))
	}

	_, msgs, err := ep.List(ctx, f)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	cmpIDs := h.CompareIDs
	if cmpIDs == nil {
		cmpIDs = CompareIDs
	}
	for i := 1; i < len(msgs); i++ {
		if cmpIDs(msgs[i-1].ID, msgs[i].ID) >= 0 {
			t.Errorf("List: ID %q after %q: not in ascending order", msgs[i].ID, msgs[i-1].ID)
		}
	}
	if len(msgs) != len(st) {
		t.Errorf("List: %d messages, %d stored", len(msgs), len(st))
	}
	for _, m := range msgs {
		sm, ok := byID[m.ID]
		if !ok {
			t.Errorf("List: %q is no ID Store gave", m.ID)
			continue
		}
		if g, w := gotFlags(m.Flags, h.Keeps), wantFlags(sm.Flags, h.Keeps); !slices.Equal(g, w) {
			t.Errorf("List %s (%s): flags %q, want %q", m.ID, sm.Name, g, w)
		}
		if h.Keeps.Date && !m.Date.Equal(sm.Date) {
			t.Errorf("List %s (%s): date %v, want %v", m.ID, sm.Name, m.Date, sm.Date)
		}
		if want := int64(len(h.served(sm.Body))); m.Size != -1 && !h.InexactListSize && m.Size != want {
			t.Errorf("List %s (%s): Size %d, want %d", m.ID, sm.Name, m.Size, want)
		}
	}
	n := 0
	err = ep.Fetch(ctx, f, msgs, func(m formats.Message, body io.Reader) error {
		var kw formats.KeyWriter
		b, err := io.ReadAll(io.TeeReader(body, &kw))
		if err != nil {
			return err
		}
		n++
		sm, ok := byID[m.ID]
		if !ok {
			return nil
		}
		if sum(b) != sum(h.served(sm.Body)) {
			t.Errorf("Fetch %s (%s): %d bytes differ from the %d stored (SHA-256)", m.ID, sm.Name, len(b), len(sm.Body))
		}
		if kw.Key() != formats.IdentityKey(sm.Body) {
			t.Errorf("Fetch %s (%s): identity key differs from the stored message's", m.ID, sm.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if n != len(msgs) {
		t.Errorf("Fetch passed %d of %d messages", n, len(msgs))
	}
}
