package conformance

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// SourceHarness is what TestSource needs to know about one Source
// implementation.
type SourceHarness struct {
	// Open makes a new endpoint holding exactly folders (INBOX exists even
	// when not given), seeded through the real server or the real files,
	// and returns a Source on it. The suite closes the Source.
	Open func(t *testing.T, folders []Folder) SourceInstance
	// Keeps says what the endpoint keeps besides the bytes.
	Keeps Keeps
	// InboxOnly: the endpoint has INBOX only (POP3); the suite seeds
	// nothing else.
	InboxOnly bool
	// Served maps the bytes given to the server to the bytes it serves
	// (CRLF for Dovecot); nil means unchanged.
	Served func([]byte) []byte
	// CompareIDs orders stable IDs; nil means the package's CompareIDs.
	CompareIDs func(a, b string) int
	// InexactListSize: the server's own size of a message (RFC822.SIZE)
	// may differ from the bytes it serves, so List's Size is not checked
	// (Fetch's m.Size still is). A server defect, never an endpoint's.
	InexactListSize bool
}

// SourceInstance is one endpoint made by SourceHarness.Open.
type SourceInstance struct {
	Source migrate.Source
	// Reopen opens a new session on the same endpoint, after Source was
	// closed (to see what a Deleter did). Nil skips the Deleter test.
	Reopen func(t *testing.T) migrate.Source
	// Vanish removes a listed message behind the Source's back (another
	// session, the file system). Nil skips the vanished-message test.
	Vanish func(t *testing.T, folder formats.Folder, m formats.Message)
}

func (h SourceHarness) served(b []byte) []byte {
	if h.Served == nil {
		return b
	}
	return h.Served(b)
}

func (h SourceHarness) seed() []Folder {
	if h.InboxOnly {
		return SourceFolders()[:1]
	}
	return SourceFolders()
}

// TestSource runs the Source conformance tests.
func TestSource(t *testing.T, h SourceHarness) {
	ctx := context.Background()
	seed := h.seed()
	inst := h.Open(t, seed)
	src := inst.Source
	t.Cleanup(func() { src.Close() })
	folders, err := src.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	byPath := map[string]formats.Folder{}
	for _, f := range folders {
		byPath[pathKey(f.Path)] = f
	}

	t.Run("Folders", func(t *testing.T) { checkFolders(t, folders, seed) })
	for _, sf := range seed {
		f, ok := byPath[pathKey(sf.Path)]
		if !ok {
			continue // reported by Folders
		}
		t.Run("Folder="+formats.DisplayName(sf.Path), func(t *testing.T) {
			checkSourceFolder(t, h, src, f, sf.Messages)
		})
	}
	if !h.InboxOnly {
		t.Run("EmptyFolder", func(t *testing.T) {
			_, msgs, err := src.List(ctx, byPath[pathKey([]string{"Empty"})])
			if err != nil || len(msgs) != 0 {
				t.Errorf("List of an empty folder: %d messages, error %v; want none and no error", len(msgs), err)
			}
		})
	} else {
		t.Run("EmptyFolder", func(t *testing.T) {
			inst := h.Open(t, nil)
			defer inst.Source.Close()
			fs, err := inst.Source.Folders(ctx)
			if err != nil || len(fs) == 0 {
				t.Fatalf("Folders of an empty endpoint: %v, %v", fs, err)
			}
			_, msgs, err := inst.Source.List(ctx, fs[0])
			if err != nil || len(msgs) != 0 {
				t.Errorf("List of an empty folder: %d messages, error %v; want none and no error", len(msgs), err)
			}
		})
	}
	t.Run("Vanished", func(t *testing.T) { testVanished(t, h) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, h) })
}

// checkFolders: parents before children, every parent present, no
// duplicates, every seeded folder present and selectable.
func checkFolders(t *testing.T, folders []formats.Folder, seed []Folder) {
	at := map[string]int{}
	for i, f := range folders {
		k := pathKey(f.Path)
		if _, dup := at[k]; dup {
			t.Errorf("folder %q listed twice", formats.DisplayName(f.Path))
		}
		at[k] = i
		if f.Name == "" {
			t.Errorf("folder %q has no Name", formats.DisplayName(f.Path))
		}
	}
	for i, f := range folders {
		for n := 1; n < len(f.Path); n++ {
			j, ok := at[pathKey(f.Path[:n])]
			switch {
			case !ok:
				t.Errorf("folder %q listed without its parent %q", formats.DisplayName(f.Path), formats.DisplayName(f.Path[:n]))
			case j > i:
				t.Errorf("folder %q listed before its parent %q", formats.DisplayName(f.Path), formats.DisplayName(f.Path[:n]))
			}
		}
	}
	for _, sf := range seed {
		i, ok := at[pathKey(sf.Path)]
		if !ok {
			t.Errorf("seeded folder %q not listed", formats.DisplayName(sf.Path))
		} else if folders[i].NoSelect {
			t.Errorf("seeded folder %q listed NoSelect", formats.DisplayName(sf.Path))
		}
	}
}

// checkSourceFolder checks List, Headers and Fetch of one seeded folder.
func checkSourceFolder(t *testing.T, h SourceHarness, src migrate.Source, f formats.Folder, seeded []Message) {
	ctx := context.Background()
	_, msgs, err := src.List(ctx, f)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(msgs) != len(seeded) {
		t.Fatalf("List: %d messages, seeded %d", len(msgs), len(seeded))
	}
	cmpIDs := h.CompareIDs
	if cmpIDs == nil {
		cmpIDs = CompareIDs
	}
	for i := 1; i < len(msgs); i++ {
		if cmpIDs(msgs[i-1].ID, msgs[i].ID) >= 0 {
			t.Errorf("List: ID %q after %q: not in ascending order of stable IDs", msgs[i].ID, msgs[i-1].ID)
		}
	}
	// Match listed messages to seeded ones by their served bytes.
	bySum := map[string]Message{}
	for _, m := range seeded {
		bySum[sum(h.served(m.Body))] = m
	}
	want := map[string]Message{} // ID -> seeded message
	fetched := map[string]int{}
	err = src.Fetch(ctx, f, msgs, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		fetched[m.ID]++
		if m.Size >= 0 && int64(len(b)) != m.Size {
			t.Errorf("Fetch %s: read %d bytes, m.Size %d", m.ID, len(b), m.Size)
		}
		sm, ok := bySum[sum(b)]
		if !ok {
			t.Errorf("Fetch %s: %d bytes that match no seeded message (SHA-256 %s)", m.ID, len(b), sum(b)[:12])
			return nil
		}
		want[m.ID] = sm
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		if fetched[m.ID] != 1 {
			t.Errorf("Fetch passed %s %d times, want once", m.ID, fetched[m.ID])
		}
		sm, ok := want[m.ID]
		if !ok {
			continue
		}
		if seen[sm.Name] {
			t.Errorf("message %q served under two IDs", sm.Name)
		}
		seen[sm.Name] = true
		if m.Size != -1 && !h.InexactListSize && m.Size != int64(len(h.served(sm.Body))) {
			t.Errorf("List %s (%s): Size %d, serves %d bytes", m.ID, sm.Name, m.Size, len(h.served(sm.Body)))
		}
		if g, w := gotFlags(m.Flags, h.Keeps), wantFlags(sm.Flags, h.Keeps); !slices.Equal(g, w) {
			t.Errorf("List %s (%s): flags %q, want %q", m.ID, sm.Name, g, w)
		}
		if h.Keeps.Date && !m.Date.Equal(sm.Date) {
			t.Errorf("List %s (%s): date %v, want %v", m.ID, sm.Name, m.Date, sm.Date)
		}
	}
	if len(fetched) != len(msgs) {
		t.Errorf("Fetch passed %d distinct messages, asked for %d", len(fetched), len(msgs))
	}
	checkHeaders(t, h, src, f, msgs, want)
	checkFetchSubset(t, src, f, msgs)
}

func checkHeaders(t *testing.T, h SourceHarness, src migrate.Source, f formats.Folder, msgs []formats.Message, want map[string]Message) {
	ctx := context.Background()
	n := map[string]int{}
	err := src.Headers(ctx, f, msgs, func(m formats.Message, header []byte) error {
		n[m.ID]++
		sm, ok := want[m.ID]
		if !ok {
			return nil
		}
		served := h.served(sm.Body)
		if g, w := formats.HeaderBlock(header), formats.HeaderBlock(served); string(g) != string(w) {
			t.Errorf("Headers %s (%s): header block of %d bytes, want %d (%q...)", m.ID, sm.Name, len(g), len(w), clip(g))
		}
		if formats.IdentityKey(header) != formats.IdentityKey(sm.Body) {
			t.Errorf("Headers %s (%s): identity key differs from the message's", m.ID, sm.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Headers: %v", err)
	}
	for _, m := range msgs {
		if n[m.ID] != 1 {
			t.Errorf("Headers passed %s %d times, want once", m.ID, n[m.ID])
		}
	}
	if len(n) != len(msgs) {
		t.Errorf("Headers passed %d distinct messages, asked for %d", len(n), len(msgs))
	}
}

// checkFetchSubset: Fetch of some messages passes exactly those; of none,
// nothing; an error from fn stops Fetch and is returned.
func checkFetchSubset(t *testing.T, src migrate.Source, f formats.Folder, msgs []formats.Message) {
	ctx := context.Background()
	if err := src.Fetch(ctx, f, nil, func(m formats.Message, _ io.Reader) error {
		t.Errorf("Fetch of no messages passed %s", m.ID)
		return nil
	}); err != nil {
		t.Errorf("Fetch of no messages: %v", err)
	}
	if len(msgs) < 2 {
		return
	}
	sub := []formats.Message{msgs[len(msgs)-1], msgs[0]}
	var got []string
	if err := src.Fetch(ctx, f, sub, func(m formats.Message, body io.Reader) error {
		got = append(got, m.ID)
		_, err := io.Copy(io.Discard, body)
		return err
	}); err != nil {
		t.Fatalf("Fetch of two messages: %v", err)
	}
	slices.Sort(got)
	want := []string{sub[0].ID, sub[1].ID}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Fetch of %q passed %q", want, got)
	}
	stop := errors.New("stop here")
	calls := 0
	err := src.Fetch(ctx, f, msgs, func(m formats.Message, body io.Reader) error {
		calls++
		return stop // without reading the body: abandoning it is allowed
	})
	if !errors.Is(err, stop) {
		t.Errorf("Fetch whose fn fails: error %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("Fetch went on after fn failed: %d calls", calls)
	}
	// The session is still usable after that.
	n := 0
	if err := src.Fetch(ctx, f, msgs[:1], func(m formats.Message, body io.Reader) error {
		n++
		_, err := io.Copy(io.Discard, body)
		return err
	}); err != nil || n != 1 {
		t.Errorf("Fetch after an fn error: %d messages, error %v", n, err)
	}
}

// testVanished: a message removed after List is skipped, without error.
func testVanished(t *testing.T, h SourceHarness) {
	ctx := context.Background()
	inst := h.Open(t, h.seed()[:1])
	defer inst.Source.Close()
	if inst.Vanish == nil {
		t.Skip("the harness cannot remove a message behind the source's back")
	}
	inbox := inboxOf(t, inst.Source)
	_, msgs, err := inst.Source.List(ctx, inbox)
	if err != nil || len(msgs) < 3 {
		t.Fatalf("List: %d messages, %v", len(msgs), err)
	}
	gone := msgs[1]
	inst.Vanish(t, inbox, gone)
	var got []string
	err = inst.Source.Fetch(ctx, inbox, msgs, func(m formats.Message, body io.Reader) error {
		got = append(got, m.ID)
		_, err := io.Copy(io.Discard, body)
		return err
	})
	if err != nil {
		t.Fatalf("Fetch with a vanished message: %v", err)
	}
	if slices.Contains(got, gone.ID) {
		t.Errorf("Fetch passed the vanished message %s", gone.ID)
	}
	if len(got) != len(msgs)-1 {
		t.Errorf("Fetch passed %d messages, want the %d that still exist", len(got), len(msgs)-1)
	}
	n := 0
	err = inst.Source.Headers(ctx, inbox, msgs, func(m formats.Message, _ []byte) error {
		n++
		if m.ID == gone.ID {
			t.Errorf("Headers passed the vanished message %s", gone.ID)
		}
		return nil
	})
	if err != nil || n != len(msgs)-1 {
		t.Errorf("Headers with a vanished message: %d messages, error %v; want %d, nil", n, err, len(msgs)-1)
	}
}

// testDelete: a Deleter removes exactly the messages given.
func testDelete(t *testing.T, h SourceHarness) {
	ctx := context.Background()
	seed := h.seed()[:1]
	inst := h.Open(t, seed)
	src := inst.Source
	del, ok := migrate.As[migrate.Deleter](src)
	if !ok {
		src.Close()
		t.Skip("not a Deleter")
	}
	if inst.Reopen == nil {
		src.Close()
		t.Skip("the harness cannot reopen the source")
	}
	inbox := inboxOf(t, src)
	_, msgs, err := src.List(ctx, inbox)
	if err != nil || len(msgs) < 4 {
		t.Fatalf("List: %d messages, %v", len(msgs), err)
	}
	before := sums(t, src, inbox, msgs)
	doomed := []formats.Message{msgs[0], msgs[2]}
	if err := del.Delete(ctx, inbox, doomed); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("Close after Delete: %v", err)
	}
	marksOnly := false
	if mo, ok := migrate.As[migrate.MarkOnlyDeleter](src); ok {
		marksOnly = mo.DeleteMarksOnly()
	}
	again := inst.Reopen(t)
	defer again.Close()
	inbox = inboxOf(t, again)
	_, left, err := again.List(ctx, inbox)
	if err != nil {
		t.Fatalf("List after Delete: %v", err)
	}
	after := sums(t, again, inbox, left)
	var want []string
	for i, m := range msgs {
		if marksOnly || (i != 0 && i != 2) {
			want = append(want, m.ID+" "+before[m.ID])
		}
	}
	var got []string
	for _, m := range left {
		got = append(got, m.ID+" "+after[m.ID])
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("after deleting %s and %s the folder holds\n%q\nwant\n%q", doomed[0].ID, doomed[1].ID, got, want)
	}
}

func inboxOf(t *testing.T, src migrate.Source) formats.Folder {
	t.Helper()
	fs, err := src.Folders(context.Background())
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for _, f := range fs {
		if formats.IsInbox(f.Path) {
			return f
		}
	}
	t.Fatalf("no INBOX among %d folders", len(fs))
	return formats.Folder{}
}

// sums maps ID to the SHA-256 of the fetched bytes.
func sums(t *testing.T, src migrate.Source, f formats.Folder, msgs []formats.Message) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := src.Fetch(context.Background(), f, msgs, func(m formats.Message, body io.Reader) error {
		b, err := io.ReadAll(body)
		out[m.ID] = sum(b)
		return err
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return out
}

func clip(b []byte) []byte {
	if len(b) > 60 {
		return b[:60]
	}
	return b
}
