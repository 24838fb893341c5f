package imap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// A delta pass opens its destination folder ahead (PrepareWrite), changes
// flags, deletes and ends (EndWrite) with one read-write selection, every
// STORE sent before the first answer is read. On each real server: every
// flag change lands, exactly the deleted UIDs go (a message the user
// marked \Deleted stays), every other message keeps its bytes, and a
// message stored into the folder meanwhile is kept (mailutils loses
// messages APPENDed by a session holding the folder read-write, so the
// held selection is left first).
func TestPrepareWriteOnRealServers(t *testing.T) {
	t.Parallel()
	t.Run("dovecot", func(t *testing.T) {
		t.Parallel()
		srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
		// 1,200 messages: each STORE is answered for more messages than
		// the client buffers per command.
		sums := func(t *testing.T) map[uint32]string {
			out := map[uint32]string{}
			for _, m := range srv.Snapshot(t, "alice")["INBOX"] {
				out[m.UID] = m.SHA256
			}
			return out
		}
		checkPrepareWrite(t, srv, "alice", "INBOX", []string{"INBOX"}, 1200, sums)
	})
	for _, kind := range servertest.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{})
			folder := srv.Name("Work")
			sums := func(t *testing.T) map[uint32]string {
				snap := srv.Snapshot(t, srv.User)[folder] // in UID order, as Bodies
				bodies := srv.Bodies(t, srv.User, folder)
				if len(bodies) != len(snap) {
					t.Fatalf("%d bodies, %d messages", len(bodies), len(snap))
				}
				out := map[uint32]string{}
				for i, m := range snap {
					b := bodies[i]
					if kind == servertest.Mailutils { // its state headers change with the flags
						b, _ = servertest.StripMailutilsHeaders(b)
					}
					out[m.UID] = fmt.Sprintf("%x", sha256.Sum256(b))
				}
				return out
			}
			checkPrepareWrite(t, srv.Server, srv.User, folder, []string{"Work"}, 60, sums)
		})
	}
}

// checkPrepareWrite runs the pass on n messages of folder; sums gives the
// SHA-256 of each message's bytes by UID.
func checkPrepareWrite(t *testing.T, srv *dovecottest.Server, user, folder string, path []string, n int, sums func(*testing.T) map[uint32]string) {
	seed := make([]dovecottest.SeedMessage, n)
	for i := range seed {
		seed[i] = dovecottest.SeedMessage{Folder: folder, Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("From: a@example.com\r\nMessage-ID: <pw-%d@example.com>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))}
	}
	userDeleted := n - 1 // marked \Deleted by the user, outside the deletions
	seed[userDeleted-1].Flags = []string{`\Seen`, `\Deleted`}
	srv.Seed(t, user, seed)
	before := srv.Snapshot(t, user)[folder]
	sumsBefore := sums(t)
	if len(before) != n {
		t.Fatalf("seeded %d messages into %s, snapshot shows %d", n, folder, len(before))
	}
	uids := make([]string, n)
	for i, m := range before {
		uids[i] = strconv.FormatUint(uint64(m.UID), 10)
	}
	// Every third message flagged, every fifth loses \Seen and gains a
	// keyword, every seventh deleted (never the user's \Deleted one).
	var flag, unsee, del []string
	for i, id := range uids {
		switch {
		case i%7 == 3 && i != userDeleted-1:
			del = append(del, id)
		case i%3 == 0:
			flag = append(flag, id)
		case i%5 == 1:
			unsee = append(unsee, id)
		}
	}

	ctx := context.Background()
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: user, Password: srv.Users[user], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	f, err := m.Ensure(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	m.PrepareWrite(f)
	changes := []migrate.FlagChange{
		{Add: []string{`\Flagged`}, IDs: flag},
		{Add: []string{"$Label1"}, Remove: []string{`\Seen`}, IDs: unsee},
	}
	if err := m.UpdateFlags(ctx, f, changes); err != nil {
		t.Fatalf("UpdateFlags: %v", err)
	}
	if m.selected != f.Name || m.readOnly || m.rw == nil {
		t.Fatalf("after UpdateFlags the folder is not held read-write for the deletions (selected %q, read-only %v)", m.selected, m.readOnly)
	}
	keeps := permanent(m.rw.PermanentFlags) // mailutils keeps no keywords
	marksOnly, err := m.DeleteDest(ctx, f, del)
	if err != nil {
		t.Fatalf("DeleteDest: %v", err)
	}
	added := []byte("From: a@example.com\r\nMessage-ID: <pw-added@example.com>\r\nSubject: added\r\n\r\nadded while held\r\n")
	if err := storeOne(ctx, m, f, []string{`\Seen`}, added); err != nil {
		t.Fatalf("Store into the folder held for writing: %v", err)
	}
	m.EndWrite()
	m.settle()
	if m.selected != "" {
		t.Errorf("after EndWrite %q is still selected", m.selected)
	}

	after := map[uint32]dovecottest.MessageState{}
	sumsAfter := sums(t)
	newer := 0
	for _, s := range srv.Snapshot(t, user)[folder] {
		after[s.UID] = s
		if s.UID > before[n-1].UID {
			newer++
		}
	}
	if newer != 1 {
		t.Errorf("%d messages newer than the seeded ones, want 1: the one stored while the folder was held", newer)
	}
	in := func(set []string, uid uint32) bool { return slices.Contains(set, strconv.FormatUint(uint64(uid), 10)) }
	for i, b := range before {
		a, ok := after[b.UID]
		switch {
		case in(del, b.UID) && marksOnly:
			if !ok || !slices.Contains(a.Flags, `\Deleted`) {
				t.Errorf("UID %d: not marked \\Deleted (server without UIDPLUS)", b.UID)
			}
			continue
		case in(del, b.UID):
			if ok {
				t.Errorf("UID %d: still there after DeleteDest", b.UID)
			}
			continue
		case !ok:
			t.Errorf("UID %d (message %d) is gone; only %d UIDs were to be deleted", b.UID, i, len(del))
			continue
		}
		if sumsAfter[b.UID] != sumsBefore[b.UID] {
			t.Errorf("UID %d: bytes changed (sha256 %s, was %s)", b.UID, sumsAfter[b.UID], sumsBefore[b.UID])
		}
		want := slices.Clone(b.Flags)
		switch {
		case in(flag, b.UID):
			want = append(want, `\Flagged`)
		case in(unsee, b.UID):
			want = slices.DeleteFunc(want, func(f string) bool { return f == `\Seen` })
			if keeps("$Label1") {
				want = append(want, "$Label1")
			}
		}
		slices.Sort(want)
		if !slices.Equal(a.Flags, want) {
			t.Errorf("UID %d: flags %q, want %q", b.UID, a.Flags, want)
		}
	}
	if !slices.Contains(after[before[userDeleted-1].UID].Flags, `\Deleted`) {
		t.Errorf("the message the user marked \\Deleted was expunged or lost its mark")
	}
}

// Courier refuses an APPEND into the folder the session has EXAMINEd ("NO
// Current box is selected READ-ONLY."), and a destination folder is
// EXAMINEd when the pass lists it to rebuild its index (a destination that
// already holds mail the state does not know): every message of the pass
// was then refused. Store now leaves the folder first. On every server:
// List, then Store into the same folder, and the message is there with its
// bytes.
func TestStoreAfterListingOnRealServers(t *testing.T) {
	t.Parallel()
	for _, kind := range servertest.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			srv := servertest.Start(t, kind, servertest.Options{})
			old := []byte("From: a@example.com\r\nMessage-ID: <old@example.com>\r\nSubject: old\r\n\r\nold\r\n")
			srv.Seed(t, srv.User, []dovecottest.SeedMessage{{Body: old}})
			ctx := context.Background()
			m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: srv.User, Password: srv.Users[srv.User], TLS: mailconn.TLSNone})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			f, err := m.Ensure(ctx, []string{"INBOX"})
			if err != nil {
				t.Fatal(err)
			}
			if _, listed, err := m.List(ctx, f); err != nil || len(listed) != 1 {
				t.Fatalf("List: %d messages, %v", len(listed), err)
			}
			for i := range 2 { // the second APPEND finds the folder left already
				b := []byte(fmt.Sprintf("From: c@example.com\r\nMessage-ID: <new-%d@example.com>\r\nSubject: new\r\n\r\nnew %d\r\n", i, i))
				if err := storeOne(ctx, m, f, nil, b); err != nil {
					t.Fatalf("Store %d after listing the same folder: %v", i, err)
				}
			}
			if got := len(srv.Snapshot(t, srv.User)["INBOX"]); got != 3 {
				t.Errorf("INBOX holds %d messages, want 3", got)
			}
		})
	}
}

// storeOne stores body into f and, where the sink queued it, commits it.
func storeOne(ctx context.Context, m *IMAP, f formats.Folder, flags []string, body []byte) error {
	_, err := m.Store(ctx, f, formats.Message{Flags: flags}, int64(len(body)), bytes.NewReader(body))
	if !errors.Is(err, migrate.ErrQueued) {
		return err
	}
	res, err := m.Commit(ctx)
	if err == nil && (len(res) != 1 || res[0].Err != nil) {
		err = fmt.Errorf("commit: %+v", res)
	}
	return err
}
