package imap

import (
	"bufio"
	"context"
	"strings"
	"testing"

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
	if err := m.EnsureAll(context.Background(), [][]string{{"Made"}, {"Refused"}}); err != nil {
		t.Fatal(err)
	}
	if !m.existing["Made"] || m.existing["Refused"] {
		t.Errorf("known to exist: %v, want Made only", m.existing)
	}
}
