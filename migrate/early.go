package migrate

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/mailferry/mailferry/formats"
)

// The first copy of a folder lists the source while the destination
// folder is made and looked at (CREATE, STATUS: a round trip on the
// destination's connection), instead of after: on a slow link that is a
// round trip less per folder. The listing is what the pass would list
// first: the first window of a folder copied in windows (window.go), else
// the whole folder. Which one depends on the destination folder being
// empty, which is known for sure only afterwards; the run's listing of the
// destination tells beforehand, and where it was wrong the early listing is
// dropped and the pass lists again.
//
// The source's connection is used by the early listing alone until
// destination() has returned: the pass waits for it (settle) before
// anything else touches the source.
//
// A worker's next folder begins sooner still (worker.startNext): once the
// folder in hand has delivered its last messages, before the destination
// answers their batch, the next folder's listing is sent on the source's
// connection (ListStarter) and its CREATE and STATUS on the destination's
// (EnsureStarter), both read only when its pass goes on. On a slow link a
// folder's end then costs the wait for that batch's answer, not that wait
// and then the next folder's first round trip. In the 80 ms benchmark each
// folder after a worker's first went out a round trip sooner
// (TestNextFolderBegunWhileTheLastBatchIsAnswered).

// earlyListing is a listing of the source started beside destination().
type earlyListing struct {
	whole       bool   // the whole folder (List), else ListUIDs(first, last)
	first, last uint32 // the window
	wait        func() // blocks until the listing is done and fills in the rest
	once        sync.Once
	validity    uint32
	msgs        []formats.Message
	err         error
}

// listEarly starts the listing of a first copy, or returns nil where the
// pass is not a first copy (its listing depends on the destination's
// index: cutover.go). sent: the listing is sent on the source's connection
// while the folder before still ends (ListStarter; nil where the source
// cannot), rather than run beside destination().
func (p *folderPass) listEarly(ctx context.Context, sent bool) *earlyListing {
	f := p.pf.Source
	if p.ss == nil || p.ss.Len() > 0 || p.ss.Validity != 0 {
		return nil
	}
	l := &earlyListing{whole: true}
	dstF, listed := p.e.listedDest(p.pf.Dest)
	rl, windowed := p.windowedIf(!listed || dstF.Messages == 0)
	if windowed {
		l.whole, l.first, l.last = false, 1, min(windowSize, f.UIDNext-1)
	}
	if sent {
		ls, ok := As[ListStarter](p.src)
		if !ok {
			return nil
		}
		wait := ls.StartList(ctx, f, l.first, l.last) // (0, 0: the whole folder)
		if wait == nil {
			return nil
		}
		l.wait = func() { l.validity, l.msgs, l.err = wait() }
		return l
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if l.whole {
			l.validity, l.msgs, l.err = p.src.List(ctx, f)
		} else {
			l.validity, l.msgs, l.err = rl.ListUIDs(ctx, f, l.first, l.last)
		}
	}()
	l.wait = func() { <-done }
	return l
}

// settle waits until the early listing is done; the source is the pass's
// again.
func (l *earlyListing) settle() {
	if l != nil {
		l.once.Do(l.wait)
	}
}

// earlyWindow gives the early listing as the window [first, last]'s (the
// form of AheadLister's wait), or nil where it is not that window.
func (p *folderPass) earlyWindow(ctx context.Context, first, last uint32) func() (uint32, []formats.Message, error) {
	v, msgs, ok, err := p.takeEarly(ctx, false, first, last)
	if !ok {
		return nil
	}
	return func() (uint32, []formats.Message, error) { return v, msgs, err }
}

// takeEarly returns the early listing if it is the whole folder (whole)
// or the window [first, last] (ok), and drops it either way. Where it is
// not, the FETCH sent early of its messages is read away too: the pass
// lists again next.
func (p *folderPass) takeEarly(ctx context.Context, whole bool, first, last uint32) (validity uint32, msgs []formats.Message, ok bool, err error) {
	l := p.early
	if l == nil {
		return 0, nil, false, nil
	}
	p.early = nil
	l.settle()
	if l.whole != whole || !whole && (l.first != first || l.last != last) {
		p.dropEarlyFetch(ctx)
		return 0, nil, false, nil
	}
	return l.validity, l.msgs, true, l.err
}

// A first copy begun while the folder before still ends (sent) also sends
// its first bodies' FETCH as soon as its early listing is in (fetchEarly),
// while the destination still answers the folder before's last batch:
// before, that FETCH went out only once the batch was answered and the
// pass went on, so on a slow link every folder after a worker's first
// waited a round trip for its first bodies after that answer. The FETCH
// asks for every message listed, which is what a first copy into an empty
// destination folder copies; the pass takes it where its decision is that
// (takeEarlyFetch), and otherwise reads its answers away before it uses
// the source, as a window dropped in copyWindows is.
//
// Only where nothing can make the decision another: no --delete-source,
// --sync-deletions, --dedup account, --since or --before, no dry run, a
// destination folder of its own (no --map merging two) that the run's
// listing showed absent or empty. The answers wait in the connection until
// the pass reads them: nothing is held in memory meanwhile.

// earlyFetch is the body FETCH of a begun first copy, sent by a goroutine
// once the early listing is in.
type earlyFetch struct {
	done  chan struct{} // closed once the goroutine is done with the source
	msgs  []formats.Message
	fetch func(context.Context, func(formats.Message, io.Reader) error) error
}

// fetchEarly starts the goroutine that sends the pass's first FETCH once
// its early listing is in (see above); the pass waits for it (waitEarlyFetch)
// before it uses the source.
func (p *folderPass) fetchEarly(ctx context.Context) {
	e, l := p.e, p.early
	fs, ok := As[FetchStarter](p.src)
	if l == nil || !ok || !e.copiesAsListed() || e.sharedDest[destKey(p.pf.Dest)] {
		return
	}
	if dstF, listed := e.listedDest(p.pf.Dest); listed && dstF.Messages > 0 {
		return
	}
	ef := &earlyFetch{done: make(chan struct{})}
	p.earlyFetch = ef
	f := p.pf.Source
	go func() {
		defer close(ef.done)
		l.settle()
		if l.err != nil || l.validity == 0 || len(l.msgs) == 0 || ctx.Err() != nil {
			return
		}
		ef.msgs = l.msgs
		ef.fetch = fs.StartFetch(f, l.msgs)
	}()
}

// waitEarlyFetch waits until the goroutine of fetchEarly is done with the
// source; where the destination folder turned out not empty (ds holds
// copies), the FETCH it sent is read away now, before the decide step
// asks the source for headers.
func (p *folderPass) waitEarlyFetch(ctx context.Context) {
	ef := p.earlyFetch
	if ef == nil {
		return
	}
	<-ef.done
	if p.ds != nil && p.ds.Len() > 0 {
		p.dropEarlyFetch(ctx)
	}
}

// takeEarlyFetch returns the FETCH sent early where it asks for copy, the
// messages the pass decided to copy, or nil (having read it away).
func (p *folderPass) takeEarlyFetch(ctx context.Context, copy []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	ef := p.earlyFetch
	if ef == nil {
		return nil
	}
	<-ef.done
	if ef.fetch == nil || !sameMessages(ef.msgs, copy) {
		p.dropEarlyFetch(ctx)
		return nil
	}
	p.earlyFetch = nil
	return ef.fetch
}

// dropEarlyFetch reads the answers of a FETCH sent early and not taken,
// as a stopped transfer reads the rest of its FETCH: within fetchGrace of
// ctx's end, then the connection is closed (interrupt.go). They must be
// read either way: go-imap's Close waits for its reader, which waits for
// each literal to be read.
func (p *folderPass) dropEarlyFetch(ctx context.Context) {
	ef := p.earlyFetch
	if ef == nil {
		return
	}
	p.earlyFetch = nil
	<-ef.done
	if ef.fetch != nil {
		dctx, stop := outlive(ctx, fetchGrace)
		defer stop()
		ef.fetch(dctx, func(formats.Message, io.Reader) error { return errWindowDropped })
	}
}

// sameMessages reports whether a and b are the same messages, in the same
// order, with the same fields.
func sameMessages(a, b []formats.Message) bool {
	return slices.EqualFunc(a, b, func(x, y formats.Message) bool {
		return x.ID == y.ID && x.UID == y.UID && x.Size == y.Size && x.Date.Equal(y.Date) &&
			x.SourceFolder == y.SourceFolder && slices.Equal(x.Flags, y.Flags)
	})
}
