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

// A wait ended by its context leaves a connection that Close ends at once.
// The IDLE holds the connection (no other command can be sent until DONE):
// WaitChange used to return leaving that to context.AfterFunc's Close,
// which a cancel can lose to the deferred stop, and Close's LOGOUT then
// waited forever (TestWatchIdleDeliversAtOnce hung 1 run in 3 so): Go
// closes Done before it runs the context's AfterFuncs, and Err is set by
// then.
func TestWaitChangeCancelledThenCloseReturns(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	inbox := formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}
	for i := range 60 {
		m, err := DialIMAP(context.Background(), mailconn.ServerConfig{Addr: srv.IMAPAddr(), User: "alice", Password: srv.Users["alice"], TLS: mailconn.TLSNone})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		// Many other users of ctx, as in a run: its cancel reaches them one
		// by one, after Done is closed, which widens the window.
		for range 2000 {
			context.AfterFunc(ctx, func() {})
		}
		time.AfterFunc(time.Duration(20+i%10)*time.Millisecond, cancel)
		if err := m.WaitChange(ctx, inbox, time.Minute); err != context.Canceled {
			t.Fatalf("wait %d ended with %v, want context.Canceled", i, err)
		}
		closed := make(chan struct{})
		go func() { m.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("wait %d: Close after a cancelled wait did not return in 10 s", i)
		}
	}
}
