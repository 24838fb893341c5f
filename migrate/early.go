package migrate

import (
	"context"
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
func (p *folderPass) earlyWindow(first, last uint32) func() (uint32, []formats.Message, error) {
	v, msgs, ok, err := p.takeEarly(false, first, last)
	if !ok {
		return nil
	}
	return func() (uint32, []formats.Message, error) { return v, msgs, err }
}

// takeEarly returns the early listing if it is the whole folder (whole)
// or the window [first, last] (ok), and drops it either way.
func (p *folderPass) takeEarly(whole bool, first, last uint32) (validity uint32, msgs []formats.Message, ok bool, err error) {
	l := p.early
	if l == nil {
		return 0, nil, false, nil
	}
	p.early = nil
	l.settle()
	if l.whole != whole || !whole && (l.first != first || l.last != last) {
		return 0, nil, false, nil
	}
	return l.validity, l.msgs, true, l.err
}
