package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// One pass over one folder, in phases: the no-op check, the destination
// (create and index), the source (list), decide (decide.go), transfer and
// record, then the folder's marks.

// folderPass carries one pass's state between the phases.
type folderPass struct {
	e      *engine
	src    Source
	dst    Sink
	pf     PlannedFolder
	name   string // the source folder's display name
	srcKey string // the source ledger's folder: source name + destination
	fr     FolderReport

	dstF     formats.Folder
	ds, ss   *FolderState
	validity uint32 // the source's UIDVALIDITY as listed
	msgs     []formats.Message
	d        decision
	keys     map[string]formats.Key
	heads    map[string]string // message ID -> Message-ID, where read
	// deferMark: --sync-deletions owes deletions, so the source mark waits
	// until they are done (cutover.go).
	deferMark bool
	// early is the source's listing started beside destination()
	// (early.go), until the pass takes it; earlyFetch the FETCH of its
	// messages sent once it is in, for a pass begun while the folder
	// before still ends (early.go), until the pass takes it.
	early      *earlyListing
	earlyFetch *earlyFetch
	// partial: the listing is ListChanged's, whose messages listed by their
	// changes only have no size and no date (listedPartly, cutover.go).
	partial bool
	// same are the UIDs of the messages ListChanged listed as unchanged,
	// ascending: the steps take each as a message listed partly with its
	// base flags (inOrder, decide.go), 4 bytes where a listed message costs
	// about 100.
	same []uint32
	// begun: begin has run; ended: it found the pass done (beginErr: or
	// failed). ensured, where set, reads the answers of the destination's
	// Ensure sent by begin.
	begun, ended bool
	beginErr     error
	ensured      func() (formats.Folder, error)
	// startNext, where set, begins the worker's next folder (sent); the
	// pass calls it once its last window's messages are all delivered,
	// before its last flush.
	startNext func()
	// poison is what the folder's passes before learnt of messages that
	// end the source's connection; died names the one this pass's
	// connection died before, with its error (poison.go).
	poison  *poison
	died    string
	diedErr error
	// giveRoom gives back the room the pass took for its ledgers
	// (ledgerroom.go).
	giveRoom func()
}

// newPass is one pass over one folder (list, decide, copy, record: copy),
// not begun.
func (e *engine) newPass(src Source, dst Sink, pf PlannedFolder) *folderPass {
	p := &folderPass{e: e, src: src, dst: dst, pf: pf, name: formats.DisplayName(pf.Source.Path)}
	p.fr = FolderReport{Source: p.name, Note: pf.Note}
	p.fr.Destination, _ = formats.JoinFolder(pf.Dest, dst.Separator())
	p.srcKey = ledgerFolder(pf)
	return p
}

// begin is the start of a pass: the no-op check (ended: the folder needs
// nothing more), the ledger, and for a first copy its first round trips:
// the source's listing, started beside destination(). Where the pass is
// begun while the folder before it on the same connections still ends
// (sent: the worker's startNext), that listing and, with sendEnsure, the
// destination's CREATE and STATUS are sent, to be read once the pass goes on (copy), so
// that on a slow link they travel while the destination answers the last
// batch of the folder before.
//
// A folder begun early that has a ledger (a mark) leaves it on disk until
// its pass goes on: nothing of it goes ahead (the early listing is a first
// copy's), and the folder before still holds its own, which for a large
// account's delta pass is tens of MB a worker.
func (p *folderPass) begin(ctx context.Context, sent, sendEnsure bool) {
	p.begun = true
	ok, err := p.e.unchanged(p)
	switch {
	case err != nil || ok:
	case sent: // its room is taken in copy (ledgerroom.go)
		var validity uint32
		validity, _, _, err = p.e.state.Mark(SideSource, p.srcKey)
		if err == nil && validity == 0 {
			err = p.loadLedger()
		}
	default:
		if err = p.takeRoom(ctx); err == nil {
			err = p.loadLedger()
		}
	}
	if err != nil || ok {
		p.ended, p.beginErr = true, err
		return
	}
	p.early = p.listEarly(ctx, sent) // early.go
	if sent && sendEnsure && !p.e.opts.DryRun {
		if es, ok := As[EnsureStarter](p.dst); ok {
			p.ensured = es.StartEnsure(ctx, p.pf.Dest)
		}
		p.fetchEarly(ctx)
	}
	if p.early != nil && !p.e.opts.DryRun {
		p.prepareStore(ctx) // a first copy will store: connect for it meanwhile
	}
}

// copy is the pass, begun already or not.
func (p *folderPass) copy(ctx context.Context) (FolderReport, error) {
	e := p.e
	defer p.dropEarlyFetch(ctx) // where the pass did not take it (early.go)
	if !p.begun {
		p.begin(ctx, false, false)
	}
	if p.ended {
		return p.fr, p.beginErr
	}
	if err := p.takeRoom(ctx); err != nil {
		return p.fr, err
	}
	if p.ss == nil {
		if err := p.loadLedger(); err != nil {
			return p.fr, err
		}
	}
	err := p.destination(ctx)
	p.early.settle()
	p.waitEarlyFetch(ctx)
	if err != nil {
		if IsFolderRefused(err) {
			return p.refused(ctx, err) // folderrefused.go
		}
		return p.fr, err
	}
	if end := p.prepareWrite(); end != nil { // cutover.go
		defer end()
	}
	if rl, ok := p.windowed(); ok && p.ss.Len() == 0 {
		return p.fr, p.copyWindows(ctx, rl) // window.go
	}
	if err := p.list(ctx); err != nil {
		return p.fr, err
	}
	if err := p.decide(ctx); err != nil {
		return p.fr, err
	}
	if err := p.moveInstead(ctx); err != nil { // moves.go
		return p.fr, err
	}
	if err := p.completeCopies(ctx); err != nil { // cutover.go
		return p.fr, err
	}
	if e.opts.DryRun {
		p.fr.Copied, p.fr.Bytes = len(p.d.copy), p.d.bytes // would be copied
		// (never from someone else's folder: namespace.go)
		if e.opts.DeleteSource && !p.pf.Source.Shared {
			p.fr.DeletedAtSource = len(p.d.deletable) + len(p.d.copy) // would be deleted
		}
		return p.fr, p.cutover(ctx, nil)
	}
	if err := e.add(p.d.matched); err != nil {
		return p.fr, err
	}
	t := &transfer{p: p, d: &p.d, keys: p.keys, fetch: p.takeEarlyFetch(ctx, p.d.copy), delivered: make(map[string]bool, min(len(p.d.copy), int(windowSize))), lastFlush: time.Now(),
		dst: dstRun{next: p.dstF.UIDNext, contiguous: true}, beforeFlush: p.startNext}
	if err := t.run(ctx); err != nil {
		return p.fr, err
	}
	if err := p.cutover(ctx, t); err != nil {
		return p.fr, err
	}
	return p.fr, p.finish(t)
}

// prepareStore lets the destination get ready to store (StorePreparer).
func (p *folderPass) prepareStore(ctx context.Context) {
	if sp, ok := As[StorePreparer](p.dst); ok {
		sp.PrepareStore(ctx)
	}
}

// ledgerFolder names a planned folder's source ledger: the source folder and
// its destination.
func ledgerFolder(pf PlannedFolder) string {
	return pf.Source.Name + "\x00" + formats.DisplayName(pf.Dest)
}

// unchanged is the no-op rerun: the source folder is complete through the
// UIDNEXT it shows now, and the destination folder, as listed when the run
// began, is as the state last saw it (same UIDVALIDITY, UIDNEXT and count:
// a destination that lost messages, or the whole folder, is looked at).
func (e *engine) unchanged(p *folderPass) (bool, error) {
	f := p.pf.Source
	if e.filtered() || e.opts.Dedup == DedupAccount || e.opts.DeleteSource || f.UIDNext == 0 {
		return false, nil
	}
	v, next, srcMsgs, err := e.state.Mark(SideSource, p.srcKey)
	if err != nil || next != f.UIDNext || v != f.Validity {
		return false, err
	}
	if ok, err := e.cutoverUnchanged(p, srcMsgs); err != nil || !ok {
		return false, err
	}
	dstF, ok := e.listedDest(p.pf.Dest)
	if !ok {
		return false, nil
	}
	v, next, n, err := e.state.Mark(SideDest, dstF.Name)
	if err != nil || v != dstF.Validity || next != dstF.UIDNext || n != dstF.Messages && !dstF.Uncounted {
		return false, err
	}
	p.fr.Found, p.fr.Skipped = int(f.Messages), int(f.Messages)
	p.fr.Destination = dstF.Name
	return true, nil
}

// listedDest finds a destination folder in the listing the run began with.
func (e *engine) listedDest(path []string) (formats.Folder, bool) {
	for _, f := range e.dstFolders {
		if !f.NoSelect && equalPath(f.Path, path) {
			return f, true
		}
	}
	return formats.Folder{}, false
}

// destination creates the destination folder (a dry run only looks it up)
// and brings the state's index of it up to date.
func (p *folderPass) destination(ctx context.Context) error {
	p.ds = newFolderState(0)
	if p.e.opts.DryRun {
		if n, ok := As[FolderNamer](p.dst); ok {
			p.fr.Destination = n.FolderName(p.pf.Dest) // with a namespace prefix
		}
		existing, ok := findFolder(p.dst, ctx, p.pf.Dest)
		if !ok {
			return nil
		}
		p.dstF = existing
	} else {
		var f formats.Folder
		var err error
		// The round's counts (createfirst.go) are taken by the first pass
		// into the folder however it counts it: a pass tried again after
		// this one stored must not find them.
		made, isMade := p.e.takeMade(p.pf.Dest)
		if p.ensured != nil { // sent by begin
			f, err = p.ensured()
			p.ensured = nil
		} else if isMade {
			f = made
			if ft, ok := As[FolderTeller](p.dst); ok {
				ft.KnowFolders([]formats.Folder{made}) // this connection did not make it
			}
		} else {
			f, err = p.dst.Ensure(ctx, p.pf.Dest)
		}
		if err != nil {
			return err
		}
		p.dstF = f
	}
	p.fr.Destination = p.dstF.Name
	ds, err := p.e.indexDest(ctx, p.dst, p.dstF)
	p.ds = ds
	return err
}

// loadLedger reads the source folder's ledger.
func (p *folderPass) loadLedger() error {
	ss, err := p.e.folderState(SideSource, p.srcKey)
	p.ss = ss
	return err
}

// list reads the source folder (only what changed, where the source can
// tell: cutover.go); a changed UIDVALIDITY starts the ledger afresh (the
// destination's index still prevents duplicates).
func (p *folderPass) list(ctx context.Context) error {
	ss := p.ss
	p.same = nil
	validity, msgs, ok, err := p.takeEarly(ctx, true, 0, 0) // early.go
	if !ok {
		validity, msgs, err = p.listSource(ctx, ss) // cutover.go
	}
	if err != nil {
		return err
	}
	if validity != ss.Validity {
		if len(p.same) > 0 { // ListChanged gives them only under the ledger's UIDVALIDITY
			return fmt.Errorf("internal error: %d messages listed as unchanged under a new UIDVALIDITY", len(p.same))
		}
		if ss.Len() > 0 {
			p.fr.Note = joinNote(p.fr.Note, "source UIDVALIDITY changed: matched against the destination again")
		}
		if err := p.e.reset(SideSource, p.srcKey, validity); err != nil {
			return err
		}
		ss = newFolderState(validity)
	}
	if p.e.filtered() {
		msgs = filterDates(msgs, p.e.opts.Since, p.e.opts.Before)
	}
	p.ss, p.validity, p.msgs = ss, validity, msgs
	p.fr.Found = len(msgs) + len(p.same)
	return nil
}

// decide runs the decide step, reading the header of each message whose
// identity key it needs (and, with --delete-source, of each message kept at
// the source, to name it in the report).
func (p *folderPass) decide(ctx context.Context) error {
	e := p.e
	avail := newDestCopies(p.ds, p.dstF.Validity)
	var lost map[string]bool
	if lr, ok := As[LostReporter](p.dst); ok && p.ss.Len() > 0 {
		lost = lr.LostSources(p.dstF, p.name)
	}
	p.d.listSkipped = e.opts.DeleteSource
	unknown, keys, occ := decideLedger(p.msgs, p.same, p.ss, lost, avail, e.opts.Dedup, e, &p.d)
	p.keys, p.heads = keys, map[string]string{}
	var want []formats.Message
	if needKeys(e.opts.Dedup, avail) {
		for _, m := range unknown {
			if _, ok := keys[m.ID]; !ok {
				want = append(want, m)
			}
		}
	}
	if e.opts.DeleteSource {
		want = append(want, p.d.keyOnly...)
	}
	if len(want) > 0 {
		err := p.src.Headers(ctx, p.pf.Source, want, func(m formats.Message, h []byte) error {
			if _, ok := keys[m.ID]; !ok {
				keys[m.ID] = ledgerKey(formats.IdentityKey(h))
			}
			p.heads[m.ID] = formats.HeaderValue(h, "Message-ID")
			return nil
		})
		if err != nil {
			return err
		}
	}
	decideKeys(unknown, keys, avail, occ, e.opts.Dedup, e, p.srcKey, &p.d)
	p.leaveOut() // poison.go
	p.fr.Skipped += p.d.skipped
	if p.d.recopied > 0 {
		p.fr.Note = joinNote(p.fr.Note, fmt.Sprintf("%d messages recorded as copied were missing at the destination: copied again", p.d.recopied))
	}
	if e.opts.DeleteSource {
		p.keepAtSource(p.d.keyOnly)
	}
	return nil
}

// keepAtSource names the messages --delete-source leaves alone because the
// destination holds them by identity key only.
func (p *folderPass) keepAtSource(msgs []formats.Message) {
	for _, m := range msgs {
		p.fr.kept = append(p.fr.kept, Failure{Folder: p.name, UID: m.UID, ID: m.ID, MessageID: p.heads[m.ID],
			Error: "kept at the source: the destination holds a message with the same identity key that mailferry did not store, so it may differ"})
	}
}

// finish records what the pass left true: the messages --delete-source may
// remove, and the marks that let the next run skip the folder.
func (p *folderPass) finish(t *transfer) error {
	if p.e.opts.DeleteSource {
		p.e.queueDelete(p.name, p.srcKey, p.pf.Source, append(p.d.deletable, *t.copied...))
	}
	return p.conclude(t.vanished(), len(*t.copied), t.dst)
}

// vanished counts the messages the transfer was to copy that the source
// did not deliver.
func (t *transfer) vanished() int {
	n := 0
	for _, m := range t.d.copy {
		if !t.delivered[m.ID] {
			n++
		}
	}
	return n
}

// conclude notes what a pass could not copy and sets the marks: stored is
// how many messages it stored, run their destination IDs.
func (p *folderPass) conclude(vanished, stored int, run dstRun) error {
	e, f := p.e, p.pf.Source
	if vanished > 0 {
		p.fr.Skipped += vanished
		p.fr.Note = joinNote(p.fr.Note, fmt.Sprintf("%d messages vanished from the source during the run", vanished))
	}
	if fd, ok := As[FlagDropper](p.dst); ok {
		if d := fd.DroppedFlags(p.dstF.Name); len(d) > 0 {
			p.fr.Note = joinNote(p.fr.Note, "the destination folder cannot keep the flags "+strings.Join(d, " ")+": messages copied without them")
		}
	}
	// Marks: the source folder is complete through the UIDNEXT seen before
	// listing; the destination index through our own contiguous appends.
	if p.fr.Failed == 0 && vanished == 0 && !e.filtered() && f.UIDNext != 0 && p.validity == f.Validity && !p.deferMark {
		if err := e.mark(SideSource, p.srcKey, p.validity, f.UIDNext, p.syncedCount()); err != nil {
			return err
		}
	}
	return p.markDest(stored, run)
}

// markDest moves the destination folder's mark past what this pass stored,
// when the new UIDNEXT and count are certain: IMAP UIDs that continue the
// indexed UIDNEXT without a gap, or a sink without UIDs (local stores) that
// named every message it stored.
func (p *folderPass) markDest(stored int, run dstRun) error {
	dstF, ds := p.dstF, p.ds
	if run.n == 0 || run.n != stored || ds.Messages != dstF.Messages || ds.Validity != dstF.Validity {
		return nil
	}
	count := dstF.Messages + uint32(run.n)
	if dstF.UIDNext == 0 {
		if ds.UIDNext != 0 {
			return nil
		}
		return p.e.mark(SideDest, dstF.Name, dstF.Validity, 0, count)
	}
	if ds.UIDNext != dstF.UIDNext || !run.contiguous {
		return nil
	}
	return p.e.mark(SideDest, dstF.Name, dstF.Validity, run.next, count)
}

// dstRun follows the destination IDs of what a transfer stored, in order,
// without keeping them: how many, and whether they are the UIDs that
// continue the destination folder's UIDNEXT without a gap.
type dstRun struct {
	n          int
	next       uint32 // the UID that continues the run
	contiguous bool
}

func (r *dstRun) add(id string) {
	r.n++
	u, err := strconv.ParseUint(id, 10, 32)
	if err != nil || uint32(u) != r.next {
		r.contiguous = false
		return
	}
	r.next++
}

// transfer is the store, queue, commit, flush and record pipeline of one
// pass: a message is recorded in the state only once the sink says it is
// durable.
type transfer struct {
	p *folderPass
	// d is the decision it carries out and keys the identity keys of its
	// messages (the pass's own, or a window's: window.go decides the next
	// window while this one's last batch is answered).
	d         *decision
	keys      map[string]formats.Key
	pending   []Record
	queue     []queued // stored as ErrQueued, waiting for Commit
	delivered map[string]bool
	lastFlush time.Time
	since     int // messages handed to the sink since the last flush
	// carryOn, where set, says at the transfer's end whether another
	// window of the folder follows with messages (window.go): then it ends
	// with a partial flush and leaves its newest queued messages in flight,
	// for the next window's transfer to record.
	carryOn func() bool
	// fetch, where set, is the source's Fetch of d.copy, already sent
	// (FetchStarter); beforeFlush, where set, runs once the source has
	// delivered everything, before the transfer's last flush.
	fetch       func(ctx context.Context, fn func(m formats.Message, body io.Reader) error) error
	beforeFlush func()
	dst         dstRun             // the destination IDs of what was stored
	copied      *[]formats.Message // the tally's list (startTally)
	tally       *passTally         // what the folder's counts are made of (counts.go)
}

// queued is a message the sink has queued (ErrQueued): its fate comes with
// the next flush. Only its Message-ID is kept of its header, to name it if
// the destination refuses it: a thousand headers per worker would be a
// large share of the process's memory.
type queued struct {
	m         formats.Message
	key       formats.Key
	messageID string
}

func (t *transfer) run(ctx context.Context) error {
	p := t.p
	t.startTally()
	// Stopped (Ctrl-C), the pass ends between two messages and makes what
	// was stored durable and recorded: the source and the destination are
	// given a grace period (interrupt.go).
	srcCtx, stopSrc := outlive(ctx, fetchGrace)
	defer stopSrc()
	dstCtx, stopDst := outlive(ctx, storeGrace)
	defer stopDst()
	if kd, ok := As[KeywordDeclarer](p.dst); ok {
		kd.DeclareKeywords(p.dstF, keywordsOf(t.d.copy))
	}
	if len(t.d.copy) > 0 {
		p.prepareStore(dstCtx) // its login overlaps the source's first FETCH
	}
	p.e.rep.FolderPlanned(p.name, len(t.d.copy), t.d.bytes)
	p.e.rep.FolderStarted(p.name)
	fetch := t.fetch
	if fetch == nil {
		fetch = func(ctx context.Context, fn func(formats.Message, io.Reader) error) error {
			return p.src.Fetch(ctx, p.pf.Source, t.d.copy, fn)
		}
	}
	t.fetch = nil     // it is called once
	var stopped error // an error of this side that ended the FETCH
	ferr := fetch(srcCtx, func(m formats.Message, body io.Reader) error {
		if err := ctx.Err(); err != nil {
			stopped = err
			return err // stopped: no further message
		}
		err := t.one(dstCtx, m, body)
		if err != nil {
			stopped = err
		}
		return err
	})
	var cut *CutInsideMessageError
	if ferr != nil && stopped == nil && IsRetryable(ferr) && !errors.As(ferr, &cut) {
		p.sourceDied(t, ferr) // poison.go: the source's connection, between two messages
	}
	if ferr == nil && t.beforeFlush != nil {
		t.beforeFlush()
	}
	// What was stored before an error is complete: make it durable and record it.
	flush := t.flush
	if ferr == nil && t.carryOn != nil && t.carryOn() {
		if bc, ok := As[BatchCarrier](p.dst); ok && t.since == 0 && len(t.pending) == 0 && bc.CarryBatch() {
			// The last message's flush sent its batch and recorded the
			// rest: a partial commit now would wait for that batch.
			return nil
		}
		flush = t.flushSome
	}
	if err := flush(dstCtx); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// startTally gives the transfer its tally (counts.go) and puts it in the
// pass's report. What the transfer stores is appended to a list of the
// tally's own (t.copied points to it): the tally once pointed to the
// transfer's field, which kept the whole transfer alive, and through it
// the pass with its ledgers, listing and decision, for as long as the
// folder's report, to the run's end. A delta pass over a million-message
// account so held every folder's ledgers at once by its end: 67 MB of
// heap.
func (t *transfer) startTally() {
	// Sized for a window's messages, not grown one at a time (46 MB of a
	// 200k copy's allocations).
	copied := make([]formats.Message, 0, min(len(t.d.copy), int(windowSize)))
	t.copied = &copied
	t.tally = &passTally{decided: true, planned: t.d.copy, stored: t.copied}
	t.p.fr.pass = t.tally
}

// keywordsOf is every keyword (a flag without a backslash) of msgs, once.
func keywordsOf(msgs []formats.Message) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range msgs {
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, "\\") && !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// one stores one message and flushes when a batch is full or old.
func (t *transfer) one(ctx context.Context, m formats.Message, body io.Reader) error {
	p := t.p
	t.delivered[m.ID] = true
	if err := formats.UnreadableErr(body); err != nil {
		t.failed(m, "", fmt.Errorf("the source could not read it: %w", err))
		return nil
	}
	m.SourceFolder = p.name
	var kw formats.KeyWriter
	defer kw.Release() // what is kept of it below is copied: the key, the Message-ID
	cr := &formats.CountingReader{R: body}
	id, err := p.dst.Store(ctx, p.dstF, m, m.Size, io.TeeReader(cr, &kw))
	if m.Size < 0 {
		m.Size = cr.N // POP3 tells the size only by the end of the message
	}
	switch {
	case errors.Is(err, ErrQueued):
		t.queue = append(t.queue, queued{m, ledgerKey(kw.Key()), formats.HeaderValue(kw.Header(), "Message-ID")})
	case IsMessageError(err):
		// Read on so that the failure can name the Message-ID.
		io.Copy(&kw, io.LimitReader(body, formats.MaxHeaderBytes))
		t.failed(m, formats.HeaderValue(kw.Header(), "Message-ID"), err)
	case err != nil:
		t.tally.lost(m) // it may have arrived
		return err
	default:
		t.stored(m, ledgerKey(kw.Key()), id)
	}
	if t.since++; (t.since >= flushEvery || time.Since(t.lastFlush) > flushInterval) && !t.lastLeftToRun() {
		return t.flushSome(ctx)
	}
	return nil
}

// lastLeftToRun says whether the flush a transfer's last message calls for
// is left to run's end, after beforeFlush: so that what beforeFlush sends
// (the next window's FETCH, the next folder's first round) goes out before
// the wait for the batch before this one, not after it. On a slow link
// that wait is the destination's whole answer to a batch, and the next
// window's bodies waited a round trip more behind it at every window. For
// a window whose successor follows (carryOn) only where the batch may stay
// in flight (BatchCarrier): elsewhere the window's end waits for its
// newest batch too, and run's one partial flush would leave it in flight
// (see copyWindows).
func (t *transfer) lastLeftToRun() bool {
	if t.beforeFlush == nil || len(t.delivered) != len(t.d.copy) {
		return false
	}
	if t.carryOn == nil {
		return true // run ends with a whole flush
	}
	bc, ok := As[BatchCarrier](t.p.dst)
	return ok && bc.CarryBatch()
}

func (t *transfer) stored(m formats.Message, key formats.Key, id string) {
	p := t.p
	t.pending = append(t.pending, Record{Side: SideSource, Folder: p.srcKey, ID: m.ID, Key: key, Copied: true,
		Dst: dstID(p.dstF, id), Base: m.Flags, HasBase: true})
	if id != "" {
		t.pending = append(t.pending, Record{Side: SideDest, Folder: p.dstF.Name, ID: indexID(id), Key: key})
		t.dst.add(id)
	}
	*t.copied = append(*t.copied, m) // counted once durable and recorded (t.tally)
	p.e.rep.MessageCopied(p.name, max(m.Size, 0))
}

func (t *transfer) failed(m formats.Message, messageID string, err error) {
	t.p.failed(t.d, t.keys, m, messageID, err)
}

// failed names m, which the pass will not copy, as a failure in the
// report; under --dedup account it gives back the key occurrence it claimed
// (d, keys: the decision and keys that planned its copy).
func (p *folderPass) failed(d *decision, keys map[string]formats.Key, m formats.Message, messageID string, err error) {
	p.fr.Failed++
	if n, ok := d.claims[m.ID]; ok {
		p.e.unclaim(keys[m.ID], n)
	}
	f := Failure{Folder: p.name, UID: m.UID, ID: m.ID, MessageID: messageID, Error: err.Error()}
	p.fr.failures = append(p.fr.failures, f)
	p.e.rep.MessageFailed(f)
}

// flush makes what was stored durable, learns the fate of what was queued,
// and only then records it in the state.
func (t *transfer) flush(ctx context.Context) error { return t.flushUpTo(ctx, true) }

// flushSome is flush between the batches of a folder: where the sink can
// (PartialCommitter), the newest queued messages stay in flight and are
// recorded by a later flush.
func (t *transfer) flushSome(ctx context.Context) error { return t.flushUpTo(ctx, false) }

func (t *transfer) flushUpTo(ctx context.Context, all bool) error {
	if cm, ok := As[Committer](t.p.dst); ok && len(t.queue) > 0 {
		commit := cm.Commit
		if pc, ok := As[PartialCommitter](t.p.dst); ok && !all {
			commit = pc.CommitSome
		}
		res, err := commit(ctx)
		if err != nil {
			for _, q := range t.queue {
				t.tally.lost(q.m) // sent; the answer is lost
			}
			t.queue = t.queue[:0] // not one of them may be taken as stored
			return err
		}
		if len(res) > len(t.queue) || all && len(res) != len(t.queue) {
			return fmt.Errorf("destination answered %d of %d queued messages", len(res), len(t.queue))
		}
		for i, r := range res {
			q := t.queue[i]
			switch {
			case r.Err == nil:
				t.stored(q.m, q.key, r.ID)
			case IsMessageError(r.Err):
				t.failed(q.m, q.messageID, r.Err)
			default:
				return r.Err
			}
		}
		t.queue = append(t.queue[:0], t.queue[len(res):]...)
	}
	if fl, ok := As[Flusher](t.p.dst); ok {
		if err := fl.Flush(ctx); err != nil {
			return err
		}
	}
	if err := t.p.e.add(t.pending); err != nil {
		return err
	}
	t.tally.recorded(&t.p.fr)
	t.pending, t.lastFlush, t.since = t.pending[:0], time.Now(), 0
	return nil
}
