package imap

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/formats/corpus"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// The identity key computed from the bytes streamed during a copy must equal
// the key computed from BODY.PEEK[HEADER] when a destination is re-indexed;
// otherwise a lost state would copy messages again.
func TestKeyFromStreamEqualsKeyFromHeaderFetch(t *testing.T) {
	_, bodies := corpus.Files(t, "dev") // skips, saying why, without the corpus
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	seed := make([]dovecottest.SeedMessage, len(bodies))
	for i, b := range bodies {
		seed[i] = dovecottest.SeedMessage{Folder: "INBOX", Body: b, Date: time.Unix(1600000000, 0)}
	}
	srv.Seed(t, "alice", seed)
	ctx := context.Background()
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	folders, err := m.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox := folders[0]
	_, msgs, err := m.List(ctx, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(bodies) {
		t.Fatalf("listed %d messages, seeded %d", len(msgs), len(bodies))
	}
	fromHeader := map[string]formats.Key{}
	if err := m.Headers(ctx, inbox, msgs, func(msg formats.Message, h []byte) error {
		fromHeader[msg.ID] = formats.IdentityKey(h)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := m.Fetch(ctx, inbox, msgs, func(msg formats.Message, body io.Reader) error {
		var kw formats.KeyWriter
		got, err := io.Copy(&kw, body)
		if err != nil {
			return err
		}
		if got != msg.Size {
			t.Errorf("UID %s: read %d bytes, literal size %d", msg.ID, got, msg.Size)
		}
		if kw.Key() != fromHeader[msg.ID] {
			t.Errorf("UID %s: key from the stream differs from the key from BODY[HEADER]", msg.ID)
		}
		n++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(msgs) {
		t.Errorf("fetched %d of %d", n, len(msgs))
	}
}
