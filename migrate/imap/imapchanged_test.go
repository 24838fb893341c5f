package imap

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// The delta listing of a large folder on Dovecot: the EXAMINE, the
// UID SEARCH ALL and the UID FETCH CHANGEDSINCE go out together, and
// Dovecot runs the SEARCH and the FETCH side by side, so the FETCH's
// answers can come before the SEARCH's end. A first version read them only
// after the SEARCH had ended: once more FETCH answers came than the
// client buffers, its reader waited for someone to take one, and the
// listing waited for the SEARCH, forever (the delta benchmark hung on a
// folder whose 368 messages had all changed). Every message must come
// back, the re-flagged half with their new flags.
func TestListChangedLargeFolderOnDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	const n = 3000
	msgs := make([]dovecottest.SeedMessage, n)
	for i := range msgs {
		msgs[i] = dovecottest.SeedMessage{Body: []byte(fmt.Sprintf("Message-ID: <large-%d@example.com>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))}
	}
	srv.Seed(t, "alice", msgs)
	c := srv.Client(t, "alice")
	sd, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	validity, modseq := sd.UIDValidity, sd.HighestModSeq
	if modseq == 0 {
		t.Fatal("Dovecot sent no HIGHESTMODSEQ: the test needs CONDSTORE")
	}
	var flagged imap.UIDSet
	for u := 1; u <= n; u += 2 {
		flagged.AddNum(imap.UID(u))
	}
	if err := c.Store(flagged, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 5 {
		m, err := DialIMAP(context.Background(), mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			msgs []formats.Message
			same []uint32
			err  error
		}
		done := make(chan result, 1)
		go func() {
			known := func(uint32) ([]string, bool) { return nil, true }
			_, got, same, err := m.ListChanged(context.Background(), formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}, validity, modseq, known)
			done <- result{got, same, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: the delta listing of %d messages did not end in 30 s", round, n)
		}
		m.Close()
		if r.err != nil {
			t.Fatalf("round %d: %v", round, r.err)
		}
		// The flagged (odd) UIDs changed since modseq: listed with their
		// flags; the others only by UID.
		if len(r.msgs) != (n+1)/2 || len(r.same) != n/2 {
			t.Fatalf("round %d: %d messages listed and %d unchanged, want %d and %d", round, len(r.msgs), len(r.same), (n+1)/2, n/2)
		}
		for i, msg := range r.msgs {
			if msg.UID != uint32(2*i+1) || !slices.Contains(msg.Flags, `\Flagged`) || msg.Size != -1 {
				t.Fatalf("round %d: listed UID %d flags %q size %d, want UID %d flagged, listed partly", round, msg.UID, msg.Flags, msg.Size, 2*i+1)
			}
		}
		for i, u := range r.same {
			if u != uint32(2*i+2) {
				t.Fatalf("round %d: unchanged %v, want the even UIDs", round, r.same)
			}
		}
	}
}

// searchUIDs walks the search result's ranges; knownMessages then splits
// the UIDs in the same array.
func TestSearchUIDsAndKnownMessages(t *testing.T) {
	var set imap.UIDSet
	set.AddRange(10, 12)
	set.AddNum(3, 7, 1)
	set.AddRange(20, 20)
	uids, err := searchUIDs(set)
	if want := []uint32{1, 3, 7, 10, 11, 12, 20}; err != nil || !slices.Equal(uids, want) {
		t.Fatalf("searchUIDs: %v, %v; want %v", uids, err, want)
	}
	if _, err := searchUIDs(imap.UIDSet{{Start: 5, Stop: 0}}); err == nil {
		t.Fatal("searchUIDs took a range up to *")
	}
	if u, err := searchUIDs(imap.UIDSet(nil)); err != nil || len(u) != 0 {
		t.Fatalf("searchUIDs of nothing: %v, %v", u, err)
	}
	known := func(u uint32) ([]string, bool) { return nil, u != 7 && u != 20 }
	changed := map[uint32][]string{3: {string(imap.FlagSeen)}, 12: nil}
	msgs, same, unknown := knownMessages(uids, known, changed)
	var got []uint32
	for _, m := range msgs {
		if m.Size != -1 || m.ID != fmt.Sprint(m.UID) {
			t.Errorf("changed message %+v not listed partly", m)
		}
		got = append(got, m.UID)
	}
	if !slices.Equal(got, []uint32{3, 12}) || !slices.Equal(same, []uint32{1, 10, 11}) || !slices.Equal(unknown, []uint32{7, 20}) {
		t.Fatalf("knownMessages: changed %v, same %v, unknown %v", got, same, unknown)
	}
}
