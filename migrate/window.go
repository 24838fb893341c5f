package migrate

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// A first copy of a large folder goes in windows of UIDs: each window is
// listed, decided, transferred and recorded in turn, so that what a pass
// holds is one window's messages (two listings) whatever the size of the
// folder (a 300,000-message INBOX costs what 1,000 do). What was copied
// lives in the state, not in memory; the pass keeps only counts. Where
// the source can (AheadLister), the next window's listing goes out before
// a window is transferred, so that on a slow link it does not wait a round
// trip of its own.
//
// Only a pass with nothing to compare goes in windows: the source ledger
// of the folder is empty and so is the destination folder, so that every
// message listed is copied and no flag has to follow. Any other pass (a
// rerun, a resumed copy, --since/--before, --dedup account,
// --delete-source, --sync-deletions, a dry run) lists the whole folder.

// windowSize is how many UIDs one window spans while every worker copies
// (windowSpan widens it as they finish), so at most how many messages it
// lists. Each worker holds two windows' listings (one read
// ahead) and a window's decision and records: at 2,000 the live heap of
// a 200k IMAP->IMAP copy was 16 MB at the median and 23 MB at most; at
// 1,000, 10 and 14 MB (GODEBUG=gctrace=1), with a third fewer
// collections.
var windowSize uint32 = 1000

// maxWindowScale is how many times windowSize a window spans at most, once
// other workers have finished (windowSpan).
const maxWindowScale = 4

// windowSpan is how many UIDs the next window a pass lists spans:
// windowSize while every worker copies, and as they finish, windowSize
// times the workers over those still copying (at most maxWindowScale
// times), so that the windows held at once stay about what every worker
// held. Why wider: each window asks for its bodies once the window before
// is delivered, and on a slow link the source then idles a round trip. A
// large folder left alone at the end of a run (INBOX: 297,700 messages of
// the million, 59,540 of the 200k set, on one worker of four) paid that at
// every 1,000 messages while nothing else kept the link busy: on the 200k
// set at 80 ms (the benchmark's rtt job), 10.8 s against 8.5 s on
// loopback. Windows of 4,000 throughout took it to 9.6 s, but peaked at
// 45-49 MB: every worker held four times as much.
func (e *engine) windowSpan() uint64 {
	n := uint64(windowSize)
	if e.workers > 1 {
		active := max(1, e.workers-int(e.idle.Load()))
		n *= uint64(min(maxWindowScale, e.workers/active))
	}
	return n
}

// windowed returns the source's RangeLister when this pass may copy its
// folder in windows (see above; the source ledger is checked by the caller).
func (p *folderPass) windowed() (RangeLister, bool) {
	return p.windowedIf(p.ds.Len() == 0)
}

// windowedIf is windowed for a destination folder that is empty or not.
func (p *folderPass) windowedIf(dstEmpty bool) (RangeLister, bool) {
	e, f := p.e, p.pf.Source
	rl, ok := As[RangeLister](p.src)
	if !ok || f.Messages <= windowSize || f.UIDNext == 0 || !dstEmpty || !e.copiesAsListed() {
		return nil, false
	}
	return rl, true
}

// errValidityMoved ends a windowed pass whose source folder changed its
// UIDVALIDITY between two windows; the next pass lists the whole folder.
var errValidityMoved = &RetryableError{Err: errors.New("the source folder's UIDVALIDITY changed during the copy")}

// copyWindows is the pass over a folder in windows, up to the UIDNEXT the
// folder showed when the run began (what arrived since is the next run's,
// as in a whole pass).
//
// Where the next window's listing went ahead and holds messages, what a
// window's end would wait for stays in flight (transfer.carryOn: a partial
// commit, not a whole one): its messages move to the next window's transfer,
// which records them once answered, so that on a slow link the
// destination does not idle for a round trip at every window's end. A pass
// that ends between two windows records them first (settleCarry).
//
// A full window (windowSize messages, as many as flushEvery) made its
// partial commit at its last message, and the one at its end waits for the
// batch that one sent: so the carry acts only where a window ends between
// two flushes (UIDs with gaps, a time-based flush), or where the sink says
// the batch may stay in flight (BatchCarrier: IMAP on a slow link).
// Skipping that wait everywhere (d7366c0, reverted) kept a second batch per
// appender in flight: the 200k IMAP->IMAP copy peaked at 40.1-41.9 MB
// instead of 32.8, and was no faster on loopback. Where the wait stays it
// is spent: once the source has delivered a window, the next one (its
// listing in hand) is decided and its FETCH sent (FetchStarter), with the
// listing of the window after it, before the wait (prepare), so that its
// bodies are on the way while the destination answers.
func (p *folderPass) copyWindows(ctx context.Context, rl RangeLister) (err error) {
	e, f := p.e, p.pf.Source
	if p.ss.Validity != f.Validity {
		if err := e.reset(SideSource, p.srcKey, f.Validity); err != nil {
			return err
		}
		p.ss = newFolderState(f.Validity)
	}
	p.validity = f.Validity
	var w windowSums
	w.dst = dstRun{next: p.dstF.UIDNext, contiguous: true}
	var last *transfer
	defer func() {
		if serr := last.settleCarry(ctx); serr != nil && err == nil {
			err = serr
		}
	}()
	// lastOf is the last UID of a window that begins at first, as wide as
	// windowSpan says when it is listed.
	lastOf := func(first uint64) uint64 { return min(first+e.windowSpan()-1, uint64(f.UIDNext)-1) }
	// The next window's listing, sent (its last UID aheadLast): the first
	// window's may be the listing made beside destination() (early.go).
	aheadLast := min(uint64(windowSize), uint64(f.UIDNext)-1)
	ahead := p.earlyWindow(ctx, 1, uint32(aheadLast))
	var got *windowListing // ahead's answer, once read (by carryOn)
	defer func() {
		if ahead != nil && got == nil {
			ahead() // its answers are read, whatever ended the pass
		}
	}()
	// nextListed reads the listing sent ahead, once.
	nextListed := func() *windowListing {
		if got == nil {
			l := &windowListing{}
			l.validity, l.msgs, l.err = ahead()
			got = l
		}
		return got
	}
	al, _ := As[AheadLister](p.src)
	fs, _ := As[FetchStarter](p.src)
	// next is the window after the one in hand when it was listed, decided
	// and its FETCH sent (fetch, where the source could) while the
	// destination answered that one's last batch (prepare).
	var next *nextWindow
	defer func() {
		if next == nil { // the pass ended first: read its answers away
			return
		}
		if next.fetch != nil {
			next.fetch(ctx, func(formats.Message, io.Reader) error { return errWindowDropped })
		}
		if next.ahead != nil {
			next.ahead()
		}
	}()
	prepare := func(first uint64) {
		if ctx.Err() != nil {
			return // stopped: no window more
		}
		l := nextListed()
		if l.err != nil || l.validity != f.Validity || len(l.msgs) == 0 {
			return // the loop takes it as it comes
		}
		p.fr.Found += len(l.msgs)
		p.msgs, p.d = l.msgs, decision{}
		next = &nextWindow{first: first, last: aheadLast, err: p.decide(ctx)}
		if next.err == nil && fs != nil {
			next.fetch = fs.StartFetch(f, p.d.copy)
		}
		// And the listing of the window after it, as the loop would send
		// it, a round trip sooner.
		if after := next.last + 1; next.err == nil && al != nil && after < uint64(f.UIDNext) {
			next.aheadLast = lastOf(after)
			next.ahead = al.ListUIDsAhead(ctx, f, uint32(after), uint32(next.aheadLast))
		}
	}
	var end uint64
	for first := uint64(1); first < uint64(f.UIDNext); first = end + 1 {
		var fetch func(context.Context, func(formats.Message, io.Reader) error) error
		var listedAhead func() (uint32, []formats.Message, error) // the next window's listing, sent (prepare)
		var listedAheadLast uint64
		if next != nil && next.first == first {
			// Listed and decided already (prepare): p holds its decision.
			if next.err != nil {
				return next.err
			}
			end = next.last
			fetch, listedAhead, listedAheadLast, next = next.fetch, next.ahead, next.aheadLast, nil
			ahead, got = nil, nil
		} else {
			var l windowListing
			if ahead != nil {
				end = aheadLast
				l = *nextListed()
				ahead, got = nil, nil
			} else {
				end = lastOf(first)
				l.validity, l.msgs, l.err = rl.ListUIDs(ctx, f, uint32(first), uint32(end))
			}
			if l.err != nil {
				return l.err
			}
			if l.validity != f.Validity {
				return errValidityMoved
			}
			p.fr.Found += len(l.msgs)
			if len(l.msgs) == 0 {
				continue
			}
			p.msgs, p.d = l.msgs, decision{}
			if err := p.decide(ctx); err != nil {
				return err
			}
			fetch = p.takeEarlyFetch(ctx, p.d.copy) // the first window's, sent early (early.go)
		}
		d := p.d // the transfer's own: prepare decides the next window meanwhile
		t := &transfer{p: p, d: &d, keys: p.keys, fetch: fetch, delivered: map[string]bool{}, lastFlush: time.Now(), dst: w.dst}
		if last != nil && len(last.pending) == 0 {
			// The records' array of the window before, flushed and empty:
			// each window grew one of its own to 2,000 records (117 MB of
			// the 1.76 GB a 200k IMAP->IMAP copy allocated).
			t.pending, last.pending = last.pending, nil
		}
		if listedAhead != nil {
			ahead, aheadLast = listedAhead, listedAheadLast
		} else if next := end + 1; al != nil && next < uint64(f.UIDNext) {
			aheadLast = lastOf(next)
			ahead = al.ListUIDsAhead(ctx, f, uint32(next), uint32(aheadLast))
		}
		if ahead != nil {
			t.carryOn = func() bool {
				n := nextListed()
				return n.err == nil && n.validity == f.Validity && len(n.msgs) > 0
			}
			t.beforeFlush = func() { prepare(end + 1) }
		} else {
			t.beforeFlush = p.startNext // the folder's last window: the next folder begins
		}
		if last != nil { // what the window before left in flight
			t.queue, last.queue = last.queue, nil
		}
		last = t
		err := last.run(ctx)
		w.add(last)
		if err != nil {
			return err
		}
	}
	p.msgs, p.d = nil, decision{} // nothing for the cutover to compare
	if err := p.cutover(ctx, last); err != nil {
		return err
	}
	return p.conclude(w.vanished, w.stored, w.dst)
}

// nextWindow is a window listed and decided before its turn (copyWindows).
type nextWindow struct {
	first, last uint64 // its UIDs
	err         error  // the decision's
	fetch       func(context.Context, func(formats.Message, io.Reader) error) error
	// ahead is the listing of the window after it, sent, up to the UID
	// aheadLast.
	ahead     func() (uint32, []formats.Message, error)
	aheadLast uint64
}

// errWindowDropped ends the FETCH of a window that was sent ahead when
// the pass ends before its turn: its answers are read and dropped.
var errWindowDropped = errors.New("the window's pass ended")

// windowListing is a window's listing.
type windowListing struct {
	validity uint32
	msgs     []formats.Message
	err      error
}

// settleCarry makes what a window left in flight durable and recorded,
// where no later window's transfer took it (t may be nil). Stopped
// (Ctrl-C) between two windows, the destination has storeGrace to answer,
// as at any transfer's end.
func (t *transfer) settleCarry(ctx context.Context) error {
	if t == nil || len(t.queue) == 0 {
		return nil
	}
	dstCtx, stop := outlive(ctx, storeGrace)
	defer stop()
	return t.flush(dstCtx)
}

// windowSums is what the windows of a pass add up to.
type windowSums struct {
	stored, vanished int
	dst              dstRun
	// copied and bytes are the recorded messages of the windows before the
	// last one, which the last window's tally counts in bulk (counts.go).
	copied int
	bytes  int64
}

// add takes in a window's transfer (run to its end or not).
func (w *windowSums) add(t *transfer) {
	t.tally.bulkCopied, t.tally.bulkBytes = w.copied, w.bytes
	for _, m := range t.tally.counted() {
		w.copied++
		w.bytes += max(m.Size, 0)
	}
	w.stored += len(*t.copied)
	w.vanished += t.vanished()
	w.dst = t.dst
}
