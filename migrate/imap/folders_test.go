package imap

import (
	"bufio"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A folder that LIST names but STATUS cannot open (mailutils lists the
// temporary file of a folder it is rewriting) gets no counts; it does not
// fail the whole listing. Seen failing a run once under load; this server
// answers that way every time.
func TestFoldersStatusRefusedForOneFolder(t *testing.T) {
	addr := fakeIMAP(t, "IMAP4rev1", func(_ *bufio.Reader, tag, rest string) (string, bool) {
		switch {
		case strings.HasPrefix(rest, "LOGIN"):
			return tag + " OK logged in\r\n", false
		case strings.HasPrefix(rest, "LIST"):
			return "* LIST () \"/\" INBOX\r\n* LIST () \"/\" muZKudbn\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "STATUS INBOX"):
			return "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 7)\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, "STATUS"):
			return tag + " NO STATUS Error opening mailbox\r\n", false
		case strings.HasPrefix(rest, "LOGOUT"):
			return "* BYE\r\n" + tag + " OK bye\r\n", true
		}
		return tag + " BAD what\r\n", false
	})
	m, err := DialIMAP(context.Background(), mailconn.ServerConfig{Addr: addr, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	fs, err := m.Folders(context.Background())
	if err != nil {
		t.Fatalf("one folder that cannot be opened failed the listing: %v", err)
	}
	got := map[string]uint32{}
	for _, f := range fs {
		got[f.Name] = f.Messages
	}
	if len(got) != 2 || got["INBOX"] != 2 || got["muZKudbn"] != 0 {
		t.Errorf("listing: %v, want INBOX with 2 messages and muZKudbn without counts", got)
	}
}

// EnsureAll creates the folders on one connection (migrate/createfirst.go):
// the ones made are known to exist afterwards (the worker's Ensure sends no
// second CREATE); one the server refused is left for Ensure to report by
// name.
func TestEnsureAllCreatesOnOneConnection(t *testing.T) {
	addr := fakeIMAP(t, "IMAP4rev1 LITERAL+", func(_ *bufio.Reader, tag, rest string) (string, bool) {
		switch {
		case strings.HasPrefix(rest, "LOGIN"):
			return tag + " OK logged in\r\n", false
		case rest == `LIST "" ""`:
			return "* LIST (\\Noselect) \"/\" \"\"\r\n" + tag + " OK done\r\n", false
		case strings.HasPrefix(rest, `CREATE "Refused"`):
			return tag + " NO not here\r\n", false
		case strings.HasPrefix(rest, "LOGOUT"):
			return "* BYE\r\n" + tag + " OK bye\r\n", true
		}
		return tag + " OK done\r\n", false
	})
	m, err := DialIMAP(context.Background(), mailconn.ServerConfig{Addr: addr, User: "carol", Password: "pw", TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	made, err := m.EnsureAll(context.Background(), [][]string{{"Made"}, {"Refused"}})
	if err != nil {
		t.Fatal(err)
	}
	// This server's STATUS gives no counts: nothing to hand the workers.
	if len(made) != 2 || made[0].Name != "" || made[1].Name != "" {
		t.Errorf("made %+v, want two zero folders", made)
	}
	if !m.existing["Made"] || m.existing["Refused"] {
		t.Errorf("known to exist: %v, want Made only", m.existing)
	}
}

// TestEnsureAllCountsWhatItMade: on Dovecot, EnsureAll gives each folder it
// made as a listing on another connection then shows it (UIDVALIDITY,
// UIDNEXT, no messages), for the worker's pass to take instead of an
// Ensure of its own; a folder that was there already (INBOX, Old) with its
// counts as well, and none for a name that is not an atom (its STATUS
// would be an EXAMINE).
func TestEnsureAllCountsWhatItMade(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	srv.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: "Old", Date: time.Unix(1600000000, 0),
		Body: []byte("Message-ID: <old@made>\r\n\r\nthere before\r\n")},
		{Folder: "INBOX", Date: time.Unix(1600000000, 0), Body: []byte("Message-ID: <in@made>\r\n\r\nthere before\r\n")},
		{Folder: "INBOX", Date: time.Unix(1600000060, 0), Body: []byte("Message-ID: <in2@made>\r\n\r\nthere before\r\n")}})
	cfg := mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone}
	ctx := context.Background()
	m, err := DialIMAP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	paths := [][]string{{"New"}, {"Old"}, {"With Space"}, {"Parent", "Child"}, {"INBOX"}}
	made, err := m.EnsureAll(ctx, paths)
	if err != nil {
		t.Fatal(err)
	}
	other, err := DialIMAP(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	listed, err := other.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]formats.Folder{}
	for _, f := range listed {
		byName[f.Name] = f
	}
	for i, p := range paths {
		name := strings.Join(p, "/")
		got, want := made[i], byName[name]
		if want.Name == "" {
			t.Errorf("%s: not listed after EnsureAll", name)
			continue
		}
		if name == "With Space" {
			if got.Name != "" {
				t.Errorf("%s: made %+v, want none", name, got)
			}
			continue
		}
		if n := map[string]uint32{"Old": 1, "INBOX": 2}[name]; n != 0 {
			if got.Name != name || got.Validity == 0 || got.Validity != want.Validity || got.UIDNext != n+1 ||
				got.UIDNext != want.UIDNext || got.Messages != n || want.Messages != n {
				t.Errorf("%s (there before, %d messages): counted %+v, listed afterwards as %+v", name, n, got, want)
			}
			continue
		}
		if got.Name != name || !slices.Equal(got.Path, p) || got.Validity == 0 || got.Validity != want.Validity ||
			got.UIDNext != 1 || got.UIDNext != want.UIDNext || got.Messages != 0 || want.Messages != 0 {
			t.Errorf("%s: made %+v, listed afterwards as %+v", name, got, want)
		}
	}
}
