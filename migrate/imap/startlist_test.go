package imap

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// StartList and StartEnsure send what List, ListUIDs and Ensure would and
// give, once waited for, the same answers; the selection StartList leaves
// is the one the next Fetch uses. A folder that does not exist is an
// error naming the SELECT, an empty one no messages.
func TestStartListAndEnsureGiveWhatListAndEnsureGive(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	var seed []dovecottest.SeedMessage
	for i := range 6 {
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Flags: []string{`\Seen`}, Date: time.Unix(1600000000+int64(i), 0),
			Body: []byte(fmt.Sprintf("Message-ID: <s%d@example.org>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))})
	}
	srv.Seed(t, "alice", seed)
	ctx := context.Background()
	m, inbox := dialInbox(t, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	v, whole, err := m.List(ctx, inbox)
	if err != nil || len(whole) != 6 {
		t.Fatalf("List: %d messages, %v", len(whole), err)
	}
	_, window, err := m.ListUIDs(ctx, inbox, 2, 4)
	if err != nil || len(window) != 3 {
		t.Fatalf("ListUIDs: %d messages, %v", len(window), err)
	}
	empty, err := m.Ensure(ctx, []string{"Empty"}) // (and the connection's selection elsewhere)
	if err != nil {
		t.Fatal(err)
	}

	sv, got, err := m.StartList(ctx, inbox, 0, 0)()
	if err != nil || sv != v || !reflect.DeepEqual(got, whole) {
		t.Errorf("StartList of the whole folder: validity %d, %d messages, %v; want %d and List's %d", sv, len(got), err, v, len(whole))
	}
	sv, got, err = m.StartList(ctx, inbox, 2, 4)()
	if err != nil || sv != v || !reflect.DeepEqual(got, window) {
		t.Errorf("StartList of UIDs 2:4: validity %d, %v, %v; want %d and ListUIDs's %v", sv, got, err, v, window)
	}
	n := 0
	if err := m.Fetch(ctx, inbox, got, func(msg formats.Message, body io.Reader) error {
		n++
		_, err := io.Copy(io.Discard, body)
		return err
	}); err != nil || n != 3 {
		t.Errorf("Fetch after StartList: %d of 3 messages, %v", n, err)
	}
	if sv, got, err := m.StartList(ctx, empty, 0, 0)(); err != nil || sv != empty.Validity || len(got) != 0 {
		t.Errorf("StartList of an empty folder: validity %d, %d messages, %v; want %d, none, no error", sv, len(got), err, empty.Validity)
	}
	if _, _, err := m.StartList(ctx, formats.Folder{Name: "Missing", Path: []string{"Missing"}}, 0, 0)(); err == nil || !strings.Contains(err.Error(), "select Missing") {
		t.Errorf("StartList of a folder that does not exist: %v; want the SELECT's error", err)
	}

	wait := m.StartEnsure(ctx, []string{"Made"})
	if wait == nil {
		t.Fatal("StartEnsure of an atom name returned nil")
	}
	made, err := wait()
	if err != nil || made.Name != "Made" || made.Validity == 0 || made.Messages != 0 {
		t.Fatalf("StartEnsure: %+v, %v; want Made, empty, with a UIDVALIDITY", made, err)
	}
	again, err := m.Ensure(ctx, []string{"Made"})
	if err != nil || again.Validity != made.Validity {
		t.Errorf("Ensure after StartEnsure: %+v, %v; want UIDVALIDITY %d", again, err, made.Validity)
	}
	if m.StartEnsure(ctx, []string{"Two words"}) != nil {
		t.Errorf("StartEnsure of a name that is not an atom (its STATUS would be an EXAMINE) did not return nil")
	}
}
