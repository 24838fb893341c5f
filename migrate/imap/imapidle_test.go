package imap

import (
	"context"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// A delivery between two waits (while --watch runs a pass) ends the next
// wait at once: it is a change since the last wait, though it happened
// when nobody was in IDLE.
func TestWaitChangeSeesADeliveryBetweenWaits(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	ctx := context.Background()
	m, err := DialIMAP(ctx, mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	inbox := formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}
	if err := m.WaitChange(ctx, inbox, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	srv.Seed(t, "alice", []dovecottest.SeedMessage{{Body: []byte("Message-ID: <between@example.com>\r\n\r\nbody\r\n")}})
	start := time.Now()
	if err := m.WaitChange(ctx, inbox, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a delivery made between two waits ended the second wait after %v, not at once: --watch would leave it for --interval", d.Round(time.Millisecond))
	}
}
