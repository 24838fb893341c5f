package pop3

// The Source conformance suite (migrate/conformance) against the POP3
// endpoint on real Dovecot: INBOX only, no flags, no dates, and a Deleter
// whose deletions take effect at QUIT.

import (
	"bytes"
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/conformance"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

func TestConformancePOP3Dovecot(t *testing.T) {
	conformance.TestSource(t, conformance.SourceHarness{
		Open:      openPOP3Conformance,
		InboxOnly: true,
		Served:    pop3Served,
		// UIDLs are Dovecot's "%08Xu%08Xv": fixed-width hex, UID first,
		// so their byte order is the maildrop's order.
	})
}

// pop3Served: Dovecot stores LF and serves CRLF, and a POP3 multi-line
// answer ends with CRLF "." CRLF, so a message without a final newline
// comes back with one (RFC 1939 cannot carry it otherwise).
func pop3Served(b []byte) []byte {
	b = conformance.CRLF(b)
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		b = append(b, "\r\n"...)
	}
	return b
}

func openPOP3Conformance(t *testing.T, folders []conformance.Folder) conformance.SourceInstance {
	srv := dovecottest.Start(t, dovecottest.Options{})
	var seed []dovecottest.SeedMessage
	for _, f := range folders {
		if !formats.IsInbox(f.Path) {
			t.Fatalf("POP3 has INBOX only, asked to seed %q", f.Path)
		}
		for _, m := range f.Messages {
			seed = append(seed, dovecottest.SeedMessage{Body: m.Body, Flags: m.Flags, Date: m.Date})
		}
	}
	if len(seed) > 0 {
		srv.Seed(t, "alice", seed)
	}
	dial := func(t *testing.T) migrate.Source {
		p, err := DialPOP3(context.Background(), mailconn.ServerConfig{
			Addr: srv.POP3Addr(), User: "alice", Password: srv.Users["alice"],
			TLS: mailconn.TLSNone, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatalf("DialPOP3: %v", err)
		}
		return p
	}
	return conformance.SourceInstance{
		Source: dial(t),
		Reopen: dial,
		// Expunge over IMAP: the UIDL's first 8 hex digits are the UID.
		Vanish: func(t *testing.T, _ formats.Folder, m formats.Message) {
			uid, err := strconv.ParseUint(m.ID[:8], 16, 32)
			if err != nil {
				t.Fatalf("UIDL %q: %v", m.ID, err)
			}
			c := srv.Client(t, "alice")
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			set := imap.UIDSetNum(imap.UID(uid))
			if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if err := c.UIDExpunge(set).Close(); err != nil {
				t.Fatal(err)
			}
		},
	}
}
