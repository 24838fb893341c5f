package imap

import (
	"context"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// --watch waits between passes with IDLE (RFC 2177) on the source's INBOX
// where the server offers it: a delivery, an expunge or a flag change there
// starts the next pass at once instead of after --interval.

var _ migrate.ChangeWaiter = (*IMAP)(nil)

// changeHandler signals changed (without blocking) on any unilateral
// EXISTS, EXPUNGE or FETCH; a FETCH is read to its end.
func changeHandler(changed chan struct{}) *imapclient.UnilateralDataHandler {
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	return &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { signal() },
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				signal()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			msg.Collect()
			signal()
		},
	}
}

// WaitChange selects folder read-only and waits in IDLE until the server
// reports a change in it, max has passed, or ctx ends. Without IDLE it
// returns migrate.ErrNoIdle at once. A lost connection is returned as it is
// (retryable): the caller opens a new one.
//
// The folder stays selected from one wait to the next, so that a change
// made between them (while --watch runs a pass) is reported as soon as the
// next IDLE begins and ends that wait at once; a fresh SELECT would take it
// for the starting point.
func (m *IMAP) WaitChange(ctx context.Context, folder formats.Folder, max time.Duration) error {
	if !m.caps.Has(imap.CapIdle) {
		return migrate.ErrNoIdle
	}
	if _, err := m.sel(folder.Name, true); err != nil {
		return err
	}
	select { // what the SELECT, or the end of the last IDLE, reported
	case <-m.changed:
	default:
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() }) // a server that never answers
	defer stop()
	idle, err := m.c.Idle()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return m.wrap("idle", err)
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	select {
	case <-m.changed:
	case <-timer.C:
	case <-ctx.Done():
	}
	if ctx.Err() != nil {
		// No DONE (the server may not answer): the connection is closed
		// here, not left to the AfterFunc above. Go closes Done before it
		// runs a context's AfterFuncs, so the deferred stop can win and
		// the AfterFunc never run; the IDLE would then hold the
		// connection, and Close's LOGOUT wait for it forever.
		m.c.Close()
		return ctx.Err()
	}
	if err := idle.Close(); err != nil {
		return m.wrap("idle", err)
	}
	if err := idle.Wait(); err != nil {
		return m.wrap("idle", err)
	}
	return nil
}
