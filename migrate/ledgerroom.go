package migrate

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// The room the workers' passes share for the ledgers they hold in memory.
//
// A pass over a folder that changed since the last run holds the folder's
// source ledger and destination index (ledgermem.go: 33 and 21 bytes a
// message) and its listing's UIDs while it decides. A first copy holds
// neither (window.go), a folder found unchanged never loads them. In a
// delta pass over a million-message account the four workers each take one
// of its largest folders at once (INBOX 297,700, then 140,000, 112,000 and
// 98,000 messages): 64 MB of peak RSS (51 MB of it the heap), once each
// pass's ledgers were let go at its end (startTally) and the state file's
// pages as they are read (dropMappedIn). A pass now takes room for its
// ledger's entries before it loads them and gives it back when it ends, so
// the ledgers held at once are about ledgerRoomEntries whatever the
// account's size; a folder larger than that takes all the room and runs
// alone. The same pass then peaked at 38 MB, INBOX alone at 37 MB, and
// took 7.8-7.9 s where it took 7.1-7.9 s (two runs each, by hand, against
// the benchmark's servers held after its delta rows).
//
// The room is taken in plan-dispatch order (largest first) and never
// overtaken (semaphore.Weighted is FIFO), so a large folder waits for the
// room to empty, not behind smaller folders that keep arriving. A worker
// takes room only while it holds none: the next folder begun early
// (startNext, begin with sent) loads no ledger that has a mark, and its
// room is taken when its pass goes on.
//
// The count is an estimate made before the load: the messages the source
// folder holds, where its ledger has a validity (a pass recorded messages
// in it: it holds about one entry for each), and the messages the
// destination folder held when the run listed it. A first copy stopped
// under way counts as the others do: it set the ledger's validity (Reset)
// before it recorded anything. (The mark's own count is no estimate: it
// is 0 without --sync-deletions, by design: syncedCount.)
var ledgerRoomEntries int64 = 500_000

// ledgerRoom hands out room for ledger entries (nil: unbounded).
type ledgerRoom struct {
	sem  *semaphore.Weighted
	size int64
	// holders is how many passes hold room (onLedgerRoom's count).
	holders atomic.Int32
}

// onLedgerRoom, where set (tests), is told how many passes hold room each
// time one takes it.
var onLedgerRoom func(holders int)

func newLedgerRoom(entries int64) *ledgerRoom {
	return &ledgerRoom{sem: semaphore.NewWeighted(entries), size: entries}
}

// take waits for room for n entries (all of it where n is more) and
// returns what gives it back, once.
func (r *ledgerRoom) take(ctx context.Context, n int64) (func(), error) {
	if r == nil || n <= 0 {
		return func() {}, nil
	}
	n = min(n, r.size)
	if err := r.sem.Acquire(ctx, n); err != nil {
		return nil, err
	}
	if h := r.holders.Add(1); onLedgerRoom != nil {
		onLedgerRoom(int(h))
	}
	given := false
	return func() {
		if !given {
			given = true
			r.holders.Add(-1)
			r.sem.Release(n)
		}
	}, nil
}

// takeRoom takes the pass's room for its ledgers (ledgerRoom), once;
// releaseRoom gives it back.
func (p *folderPass) takeRoom(ctx context.Context) error {
	if p.giveRoom != nil {
		return nil
	}
	var n int64
	if p.ss != nil {
		n = int64(p.ss.Len())
	} else {
		validity, _, _, err := p.e.state.Mark(SideSource, p.srcKey)
		if err != nil {
			return err
		}
		if validity != 0 { // recorded in (a first copy sets it first): about a ledger entry a message
			n = int64(p.pf.Source.Messages)
		}
	}
	if f, ok := p.e.listedDest(p.pf.Dest); ok && !f.Uncounted {
		n += int64(f.Messages)
	}
	give, err := p.e.room.take(ctx, n)
	if err != nil {
		return err
	}
	p.giveRoom = give
	return nil
}

func (p *folderPass) releaseRoom() {
	if p.giveRoom != nil {
		p.giveRoom()
	}
}
