package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/formats"
)

// Dedup is the scope of "already there" (--dedup).
type Dedup string

// The three dedup scopes.
const (
	DedupFolder  Dedup = "folder"  // skip when the destination folder holds the key
	DedupAccount Dedup = "account" // skip when any destination folder does
	DedupOff     Dedup = "off"     // copy everything not recorded as handled
)

// Options steer one run.
type Options struct {
	PlanOptions
	Since, Before time.Time // internal date range; zero for open
	Dedup         Dedup
	DryRun        bool
	Jobs          int
	DeleteSource  bool
	// SyncDeletions removes at the destination what mailferry copied there
	// and the source no longer has (cutover.go).
	SyncDeletions bool
	StatePath     string // the bbolt file (a dry run only reads it); "": a state in memory, no resume
	// State, when set, is used instead of StatePath (tests).
	State    State
	Reporter Reporter
	// Retries is how many times a folder is resumed after a connection
	// failure inside one run (default 5).
	Retries int
}

// Job is one migration: two endpoints (opened once per worker) and options.
type Job struct {
	// SourceName and DestName name the endpoints without secrets; they key
	// the state file and head the report.
	SourceName, DestName string
	OpenSource           func(context.Context) (Source, error)
	OpenSink             func(context.Context) (Sink, error)
	// MaybeSameAccount says both endpoints name the same user on the same
	// host (through other ports or schemes): before anything else the
	// engine makes sure they are not one mailbox.
	MaybeSameAccount bool
	Options
}

// notSameMailbox refuses a source and destination that are one mailbox: a
// folder made at the destination must not show at the source. (Every
// message would be "already there", and --delete-source would then remove
// the only copy.)
//
// The probe writes at the destination (a CREATE and a DELETE, and on
// Dovecot a rebuild of its folder index), so it is left out where the two
// listings already prove two mailboxes (distinctListings).
func (e *engine) notSameMailbox(ctx context.Context, src Source, dst Sink, srcFolders, dstFolders []formats.Folder) error {
	p, ok := As[Prober](dst)
	if !ok {
		return nil
	}
	if distinctListings(srcFolders, dstFolders) {
		e.twoAccounts = true
		return nil
	}
	leaf, remove, err := p.Probe()
	if err != nil {
		if IsRetryable(err) {
			return err
		}
		// The destination would not make the folder: the two cannot be
		// told apart, and a match by key alone is never deleted anyway.
		e.rep.Warn(fmt.Sprintf("%s and %s name the same user on the same host, and the destination refused the folder that would tell whether they are one mailbox: %v", e.job.SourceName, e.job.DestName, err))
		return nil
	}
	defer remove()
	same := Usagef("%s and %s are the same mailbox: refusing to copy it onto itself", e.job.SourceName, e.job.DestName)
	if ps, ok := As[ProbeSeer](src); ok {
		found, err := ps.HasFolderEnding(leaf)
		if err != nil || !found {
			e.twoAccounts = err == nil
			return err
		}
		return same
	}
	folders, err := src.Folders(ctx)
	if err != nil {
		return err
	}
	for _, f := range folders {
		if len(f.Path) > 0 && f.Path[len(f.Path)-1] == leaf {
			return same
		}
	}
	e.twoAccounts = true
	return nil
}

// distinctListings says whether two folder listings cannot be of one
// mailbox: a folder of the same name has a different UIDVALIDITY in each.
// One mailbox listed twice shows every folder with one UIDVALIDITY; only a
// folder deleted and made again between the two listings, milliseconds
// apart, would differ. Typical of every run after the first, when the
// destination's folders are the ones mailferry created.
func distinctListings(src, dst []formats.Folder) bool {
	validity := make(map[string]uint32, len(src))
	for _, f := range src {
		if f.Validity != 0 {
			validity[f.Name] = f.Validity
		}
	}
	for _, f := range dst {
		if v, ok := validity[f.Name]; ok && f.Validity != 0 && f.Validity != v {
			return true
		}
	}
	return false
}

// flushEvery bounds how many messages are stored before the sink is flushed
// and the state records them (a variable for the tests).
var flushEvery = 1000

// flushInterval bounds how long they wait for it.
const flushInterval = 2 * time.Second

type engine struct {
	job   Job
	opts  Options
	rep   Reporter
	state State
	// twoAccounts: notSameMailbox proved the two sides two mailboxes
	// (Job.MaybeSameAccount named one user on one host).
	twoAccounts bool
	// made holds the folders createFirst made, with their counts, until
	// the first pass into each takes them (takeMade; under mu).
	made map[string]formats.Folder

	// room bounds the ledgers the passes hold in memory at once
	// (ledgerroom.go).
	room *ledgerRoom

	mu sync.Mutex
	// have counts, under --dedup account, how many copies of a key one
	// folder of the destination account holds at most: the n-th message
	// with a key in a source folder is copied only if no folder has n yet.
	have      map[formats.Key]int
	failures  []Failure
	unopened  []error               // folders a server would not open (unopened.go)
	kept      []Failure             // messages --delete-source left at the source, and why
	deletes   map[string]*deleteSet // source folder display name -> messages safe to delete
	deleted   map[string]int        // source folder display name -> messages deleted there
	marksOnly bool                  // the source only marked them \Deleted (no UIDPLUS)
	// dstDeletes is what --sync-deletions removes at the end (cutover.go).
	dstDeletes   map[string]*destDeletes // by source ledger folder: a retried pass replaces its plan
	dstMarksOnly bool                    // the destination only marked them \Deleted
	deleteInPass bool                    // no new mail anywhere: each pass deletes at once (cutover.go)
	// dstFolders is the destination's folder list as the run began.
	dstFolders []formats.Folder
	// plan is the run's folders; the moves' index of what mailferry stored
	// (moves.go), its claims, and the destination UIDs moved away by folder.
	plan []PlannedFolder
	// sharedDest names (destKey) the destination folders that more than
	// one planned folder goes to.
	sharedDest  map[string]bool
	moveIdx     map[formats.Key][]*moveCand
	moveClaimed map[*moveCand]bool
	movedAway   map[string]map[string]bool
	// facts are what the first connection of each side learned of its
	// server, for the others (serverfacts.go).
	facts sideFacts
	// workers is how many workers copy the folders, and idle how many of
	// them found no folder left (copyFolders): a pass in windows widens
	// its windows as the others finish (window.go, windowSpan).
	workers int
	idle    atomic.Int32
}

// deleteSet is what --delete-source removes from one source folder.
type deleteSet struct {
	folder formats.Folder
	msgs   []formats.Message
	srcKey string // the source ledger's folder (forgotten once deleted)
}

// queueDelete adds messages of a source folder that are durably at the
// destination, as mailferry stored them, to what --delete-source removes.
func (e *engine) queueDelete(name, srcKey string, f formats.Folder, msgs []formats.Message) {
	if len(msgs) == 0 || f.Shared { // never someone else's mail (namespace.go)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ds := e.deletes[name]
	if ds == nil {
		ds = &deleteSet{folder: f, srcKey: srcKey}
		e.deletes[name] = ds
	}
	ds.msgs = append(ds.msgs, msgs...)
}

// Run copies every selected folder and message from the job's source to its
// sink. It returns the report, also when it stops on an error.
func Run(ctx context.Context, job Job) (*Report, error) {
	opts := job.Options
	if opts.Jobs < 1 {
		opts.Jobs = 1
	}
	if opts.Dedup == "" {
		opts.Dedup = DedupFolder
	}
	if opts.Reporter == nil {
		opts.Reporter = NopReporter{}
	}
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	rep := &Report{Source: job.SourceName, Destination: job.DestName, Started: time.Now().UTC(), DryRun: opts.DryRun, Failures: []Failure{}, Folders: []FolderReport{}}
	e := &engine{job: job, opts: opts, rep: opts.Reporter, deletes: map[string]*deleteSet{}, deleted: map[string]int{},
		room: newLedgerRoom(ledgerRoomEntries)}
	err := e.run(ctx, rep)
	if err != nil && ctx.Err() != nil {
		err = ErrInterrupted // what was stored is counted; a rerun resumes
	}
	rep.DurationSeconds = time.Since(rep.Started).Seconds()
	rep.Failures = append(rep.Failures, e.failures...)
	rep.Kept = append(rep.Kept, e.kept...)
	rep.MarkedOnly = e.marksOnly && !opts.DryRun
	rep.DestMarkedOnly = e.dstMarksOnly
	for i := range rep.Folders {
		if n, ok := e.deleted[rep.Folders[i].Source]; ok {
			rep.Folders[i].DeletedAtSource = n
		}
		rep.Totals.Add(rep.Folders[i].Counts)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

// run is the whole run in phases: connect and list both sides, plan,
// (--dedup account: index the whole destination), copy the folders over
// --jobs workers, delete from the source, and close the state.
func (e *engine) run(ctx context.Context, rep *Report) error {
	c := &conns{}
	defer c.close()
	srcFolders, dstFolders, err := e.connect(ctx, c)
	pre := c.pre
	defer func() { pre.close() }() // the one dialled below too
	if err != nil {
		return err
	}
	jobs := e.jobs()
	if pre != nil {
		pre.trim(min(jobs, len(srcFolders)) - 1) // predial.go
	} else {
		pre = e.predial(ctx, min(jobs, len(srcFolders))-1, false)
		pre.destListed(dstFolders, true)
	}
	if e.job.MaybeSameAccount && !e.opts.DryRun {
		if err := e.notSameMailbox(ctx, c.src, c.dst, srcFolders, dstFolders); err != nil {
			return err
		}
	}
	plan, err := Plan(srcFolders, dstFolders, c.dst.Separator(), e.opts.PlanOptions)
	if err != nil {
		return err
	}
	plan = inboxChildren(plan, c.src, c.dst) // inboxchildren.go
	e.dstFolders, e.plan = dstFolders, plan
	e.sharedDest = sharedDests(plan)
	e.warnLeftOut(srcFolders)
	if err := e.checkSelection(srcFolders, plan); err != nil {
		return err
	}
	e.warnNoDestDeletes(c.dst)
	planned := 0
	for _, pf := range plan {
		planned += int(pf.Source.Messages)
	}
	e.rep.Planned(len(plan), planned)
	if err := e.openState(ctx); err != nil {
		return err
	}
	defer e.state.Close()

	if e.opts.Dedup == DedupAccount {
		if err := e.indexAccount(ctx, c, dstFolders); err != nil {
			return err
		}
	}
	if e.opts.SyncDeletions && !e.opts.DryRun {
		if e.deleteInPass, err = e.noNewMail(plan); err != nil {
			return err
		}
	}
	results, err := e.copyFolders(ctx, plan, jobs, c, pre)
	for _, fr := range results {
		if fr.Source != "" {
			rep.Folders = append(rep.Folders, fr)
		}
	}
	if err == nil {
		err = e.unopenedErr() // unopened.go
	}
	if err != nil {
		return err
	}
	if err := e.syncDeletions(ctx, rep); err != nil {
		return err
	}
	if err := e.deleteSource(ctx); err != nil {
		return err
	}
	return e.state.Finish()
}

// jobs is how many workers copy folders at once.
func (e *engine) jobs() int {
	if e.opts.Dedup == DedupAccount {
		// One folder at a time, in plan order, so that the first folder met
		// (INBOX and special-use folders first) keeps the copy.
		return 1
	}
	return e.opts.Jobs
}

// conns are the first pair of connections, opened to list both sides and
// handed to the first worker, and the other workers' connections where
// they were dialled as soon as both logins were answered (predial.go).
type conns struct {
	src Source
	dst Sink
	pre *predialed
}

func (c *conns) close() {
	closeQuietly(c.src)
	closeQuietly(c.dst)
	c.src, c.dst = nil, nil
}

// connect opens both sides at once (a login costs a few round trips each)
// and lists their folders, with reconnects like any folder's copy; a server
// that cannot be reached at all on the first try is an answer, not retried.
func (e *engine) connect(ctx context.Context, c *conns) (srcFolders, dstFolders []formats.Folder, err error) {
	first := true
	err = e.retry(ctx, "connecting", func() error {
		c.close()
		// A source that says it is an account of many folders (BeforeLogin,
		// once greeted) has the other workers dialled; they log in once
		// both logins here are answered (predial.go).
		var mu sync.Mutex
		var srcIn, dstIn, dstListed bool
		var dstErr error
		var dstGreets bool
		predial := func() { // with mu held
			if c.pre == nil && e.jobs() > 1 {
				c.pre = e.predial(ctx, e.jobs()-1, true) // predial.go
				if dstListed {
					c.pre.destListed(dstFolders, dstErr == nil)
				}
				if dstGreets {
					c.pre.gate.letSinksOpen()
				}
			}
		}
		greeted := func() {
			mu.Lock()
			defer mu.Unlock()
			predial()
		}
		sinkGreeted := func() { // an IMAP destination: it waits at the gate too
			mu.Lock()
			defer mu.Unlock()
			dstGreets = true
			if c.pre != nil {
				c.pre.gate.letSinksOpen()
			}
		}
		loggedIn := func(side *bool) func() {
			return func() {
				mu.Lock()
				defer mu.Unlock()
				*side = true
				if srcIn && dstIn {
					predial()
					if c.pre != nil {
						c.pre.gate.open()
					}
				}
			}
		}
		var g errgroup.Group
		g.Go(func() error {
			sctx := context.WithValue(withLoginHook(ctx, loggedIn(&srcIn)), beforeLoginHook{}, greeted)
			s, err := e.openSource(WithListsNext(sctx))
			if err != nil {
				return err
			}
			c.src = s
			srcFolders, err = s.Folders(ctx)
			return err
		})
		g.Go(func() error {
			dctx := context.WithValue(withLoginHook(ctx, loggedIn(&dstIn)), beforeLoginHook{}, sinkGreeted)
			d, err := e.openSink(WithListsNext(dctx))
			if err != nil {
				return err
			}
			c.dst = d
			loggedIn(&dstIn)() // a sink that did not say so (a local store)
			folders, err := d.Folders(ctx)
			mu.Lock()
			dstFolders, dstErr, dstListed = folders, err, true
			if c.pre != nil {
				c.pre.destListed(dstFolders, dstErr == nil)
			}
			mu.Unlock()
			return err
		})
		err := g.Wait()
		if first && unreachable(err) {
			return &startError{err.Error()}
		}
		first = false
		return err
	})
	return srcFolders, dstFolders, err
}

// indexAccount indexes every destination folder for --dedup account: how
// many copies of each key one folder holds at most.
func (e *engine) indexAccount(ctx context.Context, c *conns, dstFolders []formats.Folder) error {
	return e.retry(ctx, "indexing the destination", func() error {
		if c.dst == nil { // lost in a failed try
			d, err := e.openSink(ctx)
			if err != nil {
				return err
			}
			c.dst = d
		}
		e.have = map[formats.Key]int{}
		for _, f := range dstFolders {
			if f.NoSelect {
				continue
			}
			ds, err := e.indexDest(ctx, c.dst, f)
			if err != nil {
				closeQuietly(c.dst)
				c.dst = nil
				return err
			}
			count := map[formats.Key]int{}
			for k := range ds.Keys() {
				count[k]++
				e.have[k] = max(e.have[k], count[k])
			}
		}
		return nil
	})
}

// copyFolders feeds the planned folders to jobs workers, each with its own
// pair of connections (the first takes over c's), and returns each folder's
// report in plan order (empty for a folder not reached). The folders the
// destination lacks are created first (createfirst.go), while the workers'
// first listings travel.
func (e *engine) copyFolders(ctx context.Context, plan []PlannedFolder, jobs int, c *conns, pre *predialed) ([]FolderReport, error) {
	results := make([]FolderReport, len(plan))
	work := make(chan int)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		for _, i := range dispatchOrder(plan, jobs) {
			select {
			case work <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	round := e.toCreateFirst(c.dst, plan, jobs)
	first := c.dst
	var workers []*worker
	for w := 0; w < min(jobs, len(plan)); w++ {
		wk := &worker{e: e, src: c.src, dst: c.dst}
		c.src, c.dst = nil, nil // the first worker takes them over and closes them
		if w > 0 {
			wk = pre.take(e) // predial.go
		}
		wk.work, wk.plan = work, plan
		workers = append(workers, wk)
	}
	e.workers = len(workers)
	e.idle.Store(0)
	cr := newCrew(len(workers))
	for _, wk := range workers {
		wk.crew = cr
	}
	if len(round) > 0 && (!e.job.MaybeSameAccount || e.twoAccounts) {
		for _, wk := range workers {
			wk.beginFirst(gctx)
		}
	}
	e.createFirst(gctx, first, round, pre) // createfirst.go
	for _, wk := range workers {
		g.Go(func() error {
			defer wk.close()
			for {
				i, ok := wk.take()
				if !ok {
					e.idle.Add(1)
					if i, ok = cr.leftover(gctx); !ok {
						return nil
					}
					e.idle.Add(-1)
				}
				fr, err := wk.folder(gctx, plan[i])
				var le *leaveError
				for errors.As(err, &le) {
					if cr.retire(wk, i) {
						e.rep.Warn(fmt.Sprintf("%v; going on with one worker fewer", le.err))
						e.idle.Add(1)
						return nil
					}
					fr, err = wk.folder(gctx, plan[i]) // the others are done: this one waits its turn
				}
				results[i] = fr
				if err != nil {
					return fmt.Errorf("folder %s: %w", formats.DisplayName(plan[i].Source.Path), err)
				}
			}
		})
	}
	return results, g.Wait()
}

// destKey is a destination folder's name as Plan compares them: case
// aside, as a server may fold it.
func destKey(path []string) string { return strings.ToLower(formats.DisplayName(path)) }

// sharedDests is the destination folders of plan that more than one
// source folder goes to.
func sharedDests(plan []PlannedFolder) map[string]bool {
	n := map[string]int{}
	shared := map[string]bool{}
	for _, pf := range plan {
		k := destKey(pf.Dest)
		if n[k]++; n[k] > 1 {
			shared[k] = true
		}
	}
	return shared
}

// dispatchOrder is the order in which the workers take the planned
// folders: with one worker, plan order (INBOX and special-use folders
// first, which --dedup account relies on); with more, the folders with most
// messages first, ties in plan order, so that no worker is left with a
// large folder when the others are done. In the benchmark's sets, plan
// order gave one worker Sent, Archive/2023 and, last, Lists/golang: 6,860
// messages of 20,000 (343,000 of the million), where INBOX, the largest
// folder, holds 5,954 (297,700).
func dispatchOrder(plan []PlannedFolder, jobs int) []int {
	order := make([]int, len(plan))
	for i := range order {
		order[i] = i
	}
	if jobs > 1 {
		sort.SliceStable(order, func(a, b int) bool {
			return plan[order[a]].Source.Messages > plan[order[b]].Source.Messages
		})
	}
	return order
}

// openState opens the run's State (Options.State, the bbolt file at
// StatePath, or for a dry run one in memory) and, after a run that died,
// waits until what it may have had in flight has settled.
func (e *engine) openState(ctx context.Context) error {
	switch {
	case e.opts.State != nil:
		e.state = e.opts.State
	case e.opts.StatePath != "" && !e.opts.DryRun:
		st, err := OpenState(e.opts.StatePath)
		if err != nil {
			return err
		}
		e.state = st
	case e.opts.StatePath != "": // a dry run reads what earlier runs recorded (drystate.go)
		st, err := openDryState(e.opts.StatePath)
		if err != nil {
			return err
		}
		e.state = st
	default:
		e.state = NewMemState()
	}
	last, err := e.state.Begin()
	if err != nil {
		return err
	}
	if wait := time.Until(last.Add(Settle)); !last.IsZero() && wait > 0 {
		e.rep.Warn(fmt.Sprintf("the previous run stopped %s ago: waiting %s for what it had in flight to settle", time.Since(last).Round(time.Millisecond), wait.Round(time.Millisecond)))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// deleteSource removes what mailferry durably stored and recorded, only
// after a run with no fatal error, only when asked and only where the
// source can.
func (e *engine) deleteSource(ctx context.Context) error {
	if !e.opts.DeleteSource || e.opts.DryRun || len(e.deletes) == 0 {
		return nil
	}
	// Retried like a copy: marking and expunging the same UIDs again is
	// harmless, and POP3 deletes only at a QUIT that was answered.
	return e.retry(ctx, "deleting from the source", func() error {
		src, err := e.openSource(ctx)
		if err != nil {
			return err
		}
		d, ok := As[Deleter](src)
		if !ok {
			src.Close()
			return Usagef("--delete-source: this source cannot delete messages")
		}
		if m, ok := As[MarkOnlyDeleter](src); ok && m.DeleteMarksOnly() {
			e.marksOnly = true
		}
		done := map[string]int{}
		for name, set := range e.deletes {
			if err := d.Delete(ctx, set.folder, set.msgs); err != nil {
				src.Close()
				return err
			}
			done[name] = len(set.msgs)
		}
		// For POP3 the deletions take effect at QUIT: Close's answer is the
		// only word that they happened.
		if err := src.Close(); err != nil {
			return fmt.Errorf("--delete-source: %w", err)
		}
		e.deleted = done
		return e.forgetDeleted()
	})
}

func closeQuietly(c io.Closer) {
	if c != nil {
		c.Close()
	}
}

type worker struct {
	e    *engine
	crew *crew // the run's workers, for leaving its folders to the others
	src  Source
	dst  Sink
	// firstListing, where set, waits for the run's listing of the
	// destination and returns it (ok: it was made), which a new destination
	// connection takes instead of listing the folders itself (predial.go).
	firstListing func() (folders []formats.Folder, ok bool)
	// beforeSink, where set, waits until a pre-dialled worker may open its
	// destination connection (predial.go).
	beforeSink func(context.Context) error
	// work hands out the plan's folders (nil once closed); next is the
	// one taken early (hasNext) and begun, where set, its pass begun on
	// the worker's connections (startNext).
	work    <-chan int
	plan    []PlannedFolder
	next    int
	hasNext bool
	begun   *folderPass
}

func (w *worker) close() {
	if w.begun != nil {
		// A FETCH sent early is read first (dropEarlyFetch): go-imap's
		// Close waits for its reader, which waits for each literal to be
		// read. The connection is closed next whatever the run's context
		// says, so a stopped run's grace starts now.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		w.begun.dropEarlyFetch(done)
	}
	closeQuietly(w.src)
	closeQuietly(w.dst)
	w.src, w.dst = nil, nil
	w.begun = nil // what it sent went with the connections
}

// take returns the index in the plan of the worker's next folder: the one
// it took early (startNext), else the next the run hands out.
func (w *worker) take() (int, bool) {
	if w.hasNext {
		w.hasNext = false
		return w.next, true
	}
	if w.work == nil {
		return 0, false // handed out (startNext saw it closed)
	}
	i, ok := <-w.work
	return i, ok
}

// startNext takes the worker's next folder early, if the run has one ready,
// and begins its pass on the worker's connections (begin, sent): called by
// a pass once its source has delivered its last messages and before it
// waits for the destination to answer them, so that on a slow link the
// next folder's first round trips (the source's listing, the destination's
// CREATE and STATUS) overlap that wait instead of following it. Nothing of
// the folder before uses the source after that point, and what goes to
// the destination's main connection meanwhile is pipelined with it.
//
// A folder whose destination folder other planned folders share (--map
// merging two) gets no STATUS ahead: taken while another pass's batch into
// that folder is on its way, it would not count what that pass records
// before this one reads the index, and the index would be started afresh
// from a count that is too low (TestNextFolderIntoTheSameDestinationTakesAFreshStatus).
func (w *worker) startNext(ctx context.Context) {
	if w.work == nil || w.hasNext || ctx.Err() != nil || w.src == nil || w.dst == nil {
		return
	}
	if !w.takeEarly(ctx, false) {
		return // none ready: the next folder starts as before
	}
	pf := w.plan[w.next]
	p := w.e.newPass(w.src, w.dst, pf)
	p.begin(ctx, true, !w.e.sharedDest[destKey(pf.Dest)])
	w.begun = p
}

// beginFirst takes the worker's first folder and, where the source can
// send a listing ahead (ListStarter), begins its pass: the listing goes
// out now and is read once the pass goes on, while the destination's
// folders are created (createfirst.go). Of the destination, only the
// connection it stores with is dialled meanwhile (PrepareStore: a login,
// no listing, as beside any first copy's CREATE); its CREATE and STATUS
// (Ensure) wait for createFirst, which uses the first pair's destination
// connection.
func (w *worker) beginFirst(ctx context.Context) {
	if w.src == nil || w.dst == nil || w.hasNext {
		return
	}
	if _, ok := As[ListStarter](w.src); !ok {
		return // its pass lists beside destination(), as always
	}
	if !w.takeEarly(ctx, true) {
		return
	}
	p := w.e.newPass(w.src, w.dst, w.plan[w.next])
	p.begin(ctx, true, false)
	w.begun = p
}

// takeEarly takes the worker's next folder from the run before its pass
// (hasNext): waiting for one (wait), or only if one is ready now.
func (w *worker) takeEarly(ctx context.Context, wait bool) bool {
	var i int
	var ok bool
	if wait {
		select {
		case i, ok = <-w.work:
		case <-ctx.Done():
			return false
		}
	} else {
		select {
		case i, ok = <-w.work:
		default:
			return false
		}
	}
	if !ok {
		w.work = nil // all handed out
		return false
	}
	w.next, w.hasNext = i, true
	return true
}

// connect opens whichever side is not open, both at once (each login
// costs round trips).
func (w *worker) connect(ctx context.Context) error {
	var g errgroup.Group
	if w.src == nil {
		g.Go(func() error {
			s, err := w.e.openSource(ctx)
			if err != nil {
				return err // (a typed nil must not land in w.src)
			}
			w.src = s
			return nil
		})
	}
	if w.dst == nil {
		g.Go(func() error {
			if w.beforeSink != nil { // pre-dialled: not before the first (predial.go)
				if err := w.beforeSink(ctx); err != nil {
					return err
				}
			}
			d, err := w.e.openSink(ctx)
			if err != nil {
				return err
			}
			w.dst = d
			// A fresh IMAP sink knows no folders: let it learn which exist.
			if fl, ok := As[FolderLearner](d); ok {
				if w.firstListing != nil {
					folders, listed := w.firstListing()
					if ft, ok := As[FolderTeller](d); ok && listed {
						ft.KnowFolders(folders)
						return nil
					}
				}
				return fl.LearnFolders(ctx)
			}
			return nil
		})
	}
	return g.Wait()
}

// folder copies one folder, reconnecting and resuming after connection
// failures (the state makes a resumed pass safe). Its counts are settled
// from all its passes (counts.go).
func (w *worker) folder(ctx context.Context, pf PlannedFolder) (FolderReport, error) {
	var passes []FolderReport
	// A message refused in a pass that then lost its connection is not
	// recorded, so the next pass tries it again: the failures that count
	// are the last complete pass's (or, when none completed, every pass's,
	// once per message).
	failed := map[string]Failure{}
	ps := &poison{} // poison.go
	err := w.e.retry(ctx, formats.DisplayName(pf.Source.Path), func() error {
		if err := ctx.Err(); err != nil {
			return err // stopped: start no pass
		}
		if len(passes) > 0 {
			w.close() // a fresh pair of connections after a failed pass
		}
		err := w.connect(ctx)
		if refusedLogin(err) && len(passes) == 0 && w.crew.others() {
			// Not retried: the others copy this folder (crew.go). Only
			// before a pass of it: one that began is resumed here, where
			// its counts are settled.
			return &leaveError{err}
		}
		var fr FolderReport
		if err == nil {
			p := w.begun
			if p == nil || ledgerFolder(p.pf) != ledgerFolder(pf) {
				p = w.e.newPass(w.src, w.dst, pf)
			}
			w.begun = nil
			p.startNext = func() { w.startNext(ctx) }
			p.poison = ps
			fr, err = p.copy(ctx)
			p.releaseRoom()
			ps.after(p)
		}
		passes = append(passes, fr)
		for _, f := range fr.failures {
			failed[f.ID] = f
		}
		return err
	})
	var le *leaveError
	if errors.As(err, &le) {
		return FolderReport{}, err // the folder goes back to the others, untouched
	}
	fr := settle(passes)
	switch {
	case err == nil:
	case w.e.vanished(ctx, pf, err): // vanished.go
		fr, err = w.e.skipVanished(fr, pf, err), nil
	case unopened(err) && ctx.Err() == nil: // unopened.go
		fr, err = w.e.failUnopened(fr, pf, err), nil
	}
	if err == nil {
		w.e.keep(fr.failures, fr.kept)
		w.e.rep.FolderDone(fr)
		return fr, nil
	}
	all := make([]Failure, 0, len(failed))
	for _, f := range failed {
		all = append(all, f)
	}
	sort.Slice(all, func(i, j int) bool {
		return all[i].UID < all[j].UID || all[i].UID == all[j].UID && all[i].ID < all[j].ID
	})
	w.e.keep(all, nil)
	return fr, err
}

// retry runs fn until it succeeds, fails for good, or the retry budget is
// spent, waiting with exponential backoff between tries. Only a
// *RetryableError (a lost connection, a timeout, BYE, [UNAVAILABLE]) is tried
// again.
func (e *engine) retry(ctx context.Context, what string, fn func() error) error {
	backoff := time.Second
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !IsRetryable(err) || attempt >= e.opts.Retries || ctx.Err() != nil {
			return err
		}
		e.rep.Warn(fmt.Sprintf("%s: %v; trying again in %s", what, err, backoff))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// indexDest brings the state's index of one destination folder up to date.
// The index is a cache: a changed UIDVALIDITY, or a folder holding fewer
// messages than the index lists (messages deleted there), starts it afresh;
// a moved UIDNEXT or count (or a sink that cannot tell) indexes what is
// unknown.
func (e *engine) indexDest(ctx context.Context, dst Sink, f formats.Folder) (*FolderState, error) {
	ds, err := e.folderState(SideDest, f.Name)
	if err != nil {
		return nil, err
	}
	if f.UIDNext != 0 && f.UIDNext == ds.UIDNext && f.Messages == ds.Messages && f.Validity == ds.Validity {
		return ds, nil
	}
	for fresh := false; ; fresh = true {
		if ds.Validity != f.Validity || int(f.Messages) < ds.Len() {
			if err := e.reset(SideDest, f.Name, f.Validity); err != nil {
				return nil, err
			}
			ds = newFolderState(f.Validity)
		}
		if f.UIDNext != 0 && f.Messages == 0 { // an IMAP folder that is empty: nothing to index
			break
		}
		var recs []Record
		err = dst.Index(ctx, f, func(id string) bool { _, ok := ds.Key(indexID(id)); return ok }, func(id string, key formats.Key) error {
			id, key = indexID(id), ledgerKey(key)
			r := Record{Side: SideDest, Folder: f.Name, ID: id, Key: key}
			ds.Put(r)
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if err := e.add(recs); err != nil {
			return nil, err
		}
		// Messages deleted at the destination while others arrived leave
		// the count right and the index too long: index afresh once.
		if fresh || ds.Len() <= int(f.Messages) {
			break
		}
		ds.Validity = 0
	}
	ds.UIDNext, ds.Messages = f.UIDNext, f.Messages
	if err := e.mark(SideDest, f.Name, f.Validity, f.UIDNext, f.Messages); err != nil {
		return nil, err
	}
	return ds, nil
}

func (e *engine) filtered() bool { return !e.opts.Since.IsZero() || !e.opts.Before.IsZero() }

// copiesAsListed says whether a first copy into an empty destination folder
// copies every message the source lists, as listed: no dry run, nothing
// deleted or followed (--delete-source, --sync-deletions), no key shared
// across folders (--dedup account), no date filter. Only then may it be
// copied in windows (window.go) or its bodies asked for early (early.go).
func (e *engine) copiesAsListed() bool {
	return !e.opts.DryRun && !e.opts.DeleteSource && !e.opts.SyncDeletions && e.opts.Dedup != DedupAccount && !e.filtered()
}

func findFolder(dst Sink, ctx context.Context, path []string) (formats.Folder, bool) {
	fs, err := dst.Folders(ctx)
	if err != nil {
		return formats.Folder{}, false
	}
	for _, f := range fs {
		if equalPath(f.Path, path) && !f.NoSelect {
			return f, true
		}
	}
	return formats.Folder{}, false
}

func filterDates(msgs []formats.Message, since, before time.Time) []formats.Message {
	var out []formats.Message
	for _, m := range msgs {
		if !since.IsZero() && m.Date.Before(since) {
			continue
		}
		if !before.IsZero() && !m.Date.Before(before) {
			continue
		}
		out = append(out, m)
	}
	return out
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// claim reports whether the n-th copy of k is still missing from every
// destination folder, and if so counts it as there.
func (e *engine) claim(k formats.Key, n int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.have[k] >= n {
		return false
	}
	e.have[k] = n
	return true
}

// holds reports whether n copies of k are at the destination account
// (--dedup account).
func (e *engine) holds(k formats.Key, n int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.have[k] >= n
}

// unclaim undoes claim(k, n) for a copy that failed.
func (e *engine) unclaim(k formats.Key, n int) {
	e.mu.Lock()
	if e.have[k] == n {
		e.have[k] = n - 1
	}
	e.mu.Unlock()
}

// keep adds one folder's failed messages, and those --delete-source left
// at the source, to the run's.
func (e *engine) keep(failed, kept []Failure) {
	e.mu.Lock()
	e.failures = append(e.failures, failed...)
	e.kept = append(e.kept, kept...)
	e.mu.Unlock()
}

// State access (the ledger's errors are returned as they are).
func (e *engine) folderState(side Side, name string) (*FolderState, error) {
	return e.state.Folder(side, name)
}

func (e *engine) reset(side Side, name string, validity uint32) error {
	return e.state.Reset(side, name, validity)
}

func (e *engine) mark(side Side, name string, validity, next, messages uint32) error {
	return e.state.SetMark(side, name, validity, next, messages)
}

func (e *engine) add(recs []Record) error {
	return e.state.Add(recs)
}
