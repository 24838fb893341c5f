package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
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
	StatePath     string // the bbolt file; "" for an in-memory-free run (no resume)
	Reporter      Reporter
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
	Options
}

// flushEvery bounds how many messages are stored before the sink is flushed
// and the state records them.
const (
	flushEvery    = 1000
	flushInterval = 2 * time.Second
)

type engine struct {
	job   Job
	opts  Options
	rep   Reporter
	state *State

	mu sync.Mutex
	// have counts, under --dedup account, how many copies of a key one
	// folder of the destination account holds at most: the n-th message
	// with a key in a source folder is copied only if no folder has n yet.
	have      map[formats.Key]int
	failures  []Failure
	deletes   map[string][]formats.Message // source folder name -> messages safe to delete
	srcByName map[string]formats.Folder
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
	e := &engine{job: job, opts: opts, rep: opts.Reporter, deletes: map[string][]formats.Message{}, srcByName: map[string]formats.Folder{}}
	err := e.run(ctx, rep)
	rep.DurationSeconds = time.Since(rep.Started).Seconds()
	rep.Failures = append(rep.Failures, e.failures...)
	for _, f := range rep.Folders {
		rep.Totals.add(f.Counts)
	}
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func (e *engine) run(ctx context.Context, rep *Report) error {
	var (
		src                    Source
		dst                    Sink
		srcFolders, dstFolders []formats.Folder
	)
	defer func() { closeQuietly(src); closeQuietly(dst) }()
	// Connecting and listing, with reconnects like any folder's copy.
	err := e.retry(ctx, "connecting", func() error {
		closeQuietly(src)
		closeQuietly(dst)
		src, dst = nil, nil
		// Both sides at once: a login costs a few round trips each.
		var g errgroup.Group
		g.Go(func() error {
			s, err := e.job.OpenSource(ctx)
			if err != nil {
				return err
			}
			src = s
			srcFolders, err = src.Folders(ctx)
			return err
		})
		g.Go(func() error {
			d, err := e.job.OpenSink(ctx)
			if err != nil {
				return err
			}
			dst = d
			dstFolders, err = dst.Folders(ctx)
			return err
		})
		return g.Wait()
	})
	if err != nil {
		return err
	}
	plan, err := Plan(srcFolders, dstFolders, dst.Separator(), e.opts.PlanOptions)
	if err != nil {
		return err
	}
	planned := 0
	for _, pf := range plan {
		e.srcByName[pf.Source.Name] = pf.Source
		planned += int(pf.Source.Messages)
	}
	e.rep.Planned(len(plan), planned)
	if e.opts.StatePath != "" && !e.opts.DryRun {
		if e.state, err = OpenState(e.opts.StatePath); err != nil {
			return err
		}
		defer e.state.Close()
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
	} else {
		e.state = nil
	}

	jobs := e.opts.Jobs
	if e.opts.Dedup == DedupAccount {
		// One folder at a time, in plan order, so that the first folder met
		// (INBOX and special-use folders first) keeps the copy.
		jobs = 1
		err := e.retry(ctx, "indexing the destination", func() error {
			if dst == nil { // lost in a failed try
				d, err := e.job.OpenSink(ctx)
				if err != nil {
					return err
				}
				dst = d
			}
			e.have = map[formats.Key]int{}
			for _, f := range dstFolders {
				if f.NoSelect {
					continue
				}
				ds, err := e.indexDest(ctx, dst, f)
				if err != nil {
					closeQuietly(dst)
					dst = nil
					return err
				}
				count := map[formats.Key]int{}
				for _, k := range ds.IDs {
					count[k]++
					e.have[k] = max(e.have[k], count[k])
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	results := make([]FolderReport, len(plan))
	work := make(chan int)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(work)
		for i := range plan {
			select {
			case work <- i:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for w := 0; w < jobs; w++ {
		w := w
		g.Go(func() error {
			wk := &worker{e: e}
			if w == 0 {
				wk.src, wk.dst = src, dst
				src, dst = nil, nil // the worker closes them
			}
			defer wk.close()
			for i := range work {
				fr, err := wk.folder(gctx, plan[i])
				results[i] = fr
				if err != nil {
					return fmt.Errorf("folder %s: %w", formats.DisplayName(plan[i].Source.Path), err)
				}
			}
			return nil
		})
	}
	err = g.Wait()
	for _, fr := range results {
		if fr.Source != "" {
			rep.Folders = append(rep.Folders, fr)
		}
	}
	if err != nil {
		return err
	}
	if err := e.deleteSource(ctx); err != nil {
		return err
	}
	if e.state != nil {
		return e.state.Finish()
	}
	return nil
}

// deleteSource removes what was durably copied and recorded, only after a
// run with no fatal error, only when asked and only where the source can.
func (e *engine) deleteSource(ctx context.Context) error {
	if !e.opts.DeleteSource || e.opts.DryRun || len(e.deletes) == 0 {
		return nil
	}
	// Retried like a copy: marking and expunging the same UIDs again is
	// harmless, and POP3 deletes only at a QUIT that was answered.
	return e.retry(ctx, "deleting from the source", func() error {
		src, err := e.job.OpenSource(ctx)
		if err != nil {
			return err
		}
		d, ok := src.(Deleter)
		if !ok {
			src.Close()
			return usagef("--delete-source: this source cannot delete messages")
		}
		for name, msgs := range e.deletes {
			if err := d.Delete(ctx, e.srcByName[name], msgs); err != nil {
				src.Close()
				return err
			}
		}
		// For POP3 the deletions take effect at QUIT: Close's answer is the
		// only word that they happened.
		if err := src.Close(); err != nil {
			return fmt.Errorf("--delete-source: %w", err)
		}
		return nil
	})
}

func closeQuietly(c io.Closer) {
	if c != nil {
		c.Close()
	}
}

type worker struct {
	e   *engine
	src Source
	dst Sink
}

func (w *worker) close() {
	closeQuietly(w.src)
	closeQuietly(w.dst)
	w.src, w.dst = nil, nil
}

func (w *worker) connect(ctx context.Context) error {
	if w.src == nil {
		s, err := w.e.job.OpenSource(ctx)
		if err != nil {
			return err // (a typed nil must not land in w.src)
		}
		w.src = s
	}
	if w.dst == nil {
		d, err := w.e.job.OpenSink(ctx)
		if err != nil {
			return err
		}
		w.dst = d
		// A fresh IMAP sink knows no folders: let it learn which exist.
		if _, err = w.dst.Folders(ctx); err != nil {
			return err
		}
	}
	return nil
}

// folder copies one folder, reconnecting and resuming after connection
// failures (the state makes a resumed pass safe).
func (w *worker) folder(ctx context.Context, pf PlannedFolder) (FolderReport, error) {
	// Messages copied by a pass that then lost its connection are skipped
	// (already handled) by the next pass: count them as copied once.
	var copied int
	var bytes int64
	var fr FolderReport
	// A message refused in a pass that then lost its connection is not
	// recorded, so the next pass tries it again: the failures that count
	// are the last complete pass's (or, when none completed, every pass's,
	// once per message).
	failed := map[string]Failure{}
	first := true
	err := w.e.retry(ctx, formats.DisplayName(pf.Source.Path), func() error {
		if !first {
			w.close() // a fresh pair of connections after a failed pass
		}
		first = false
		if fr.Copied > copied {
			copied, bytes = fr.Copied, fr.Bytes
		}
		err := w.connect(ctx)
		fr = FolderReport{}
		if err == nil {
			fr, err = w.e.copyFolder(ctx, w.src, w.dst, pf)
		}
		fr.Copied += copied
		fr.Skipped = max(fr.Skipped-copied, 0)
		fr.Bytes += bytes
		for _, f := range fr.failures {
			failed[f.ID] = f
		}
		return err
	})
	if err == nil {
		w.e.keepFailures(fr.failures)
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
	w.e.keepFailures(all)
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

// indexDest brings the state's index of one destination folder up to date:
// a changed UIDVALIDITY or fewer messages than recorded resets it, a moved
// UIDNEXT (or a sink that cannot tell) indexes what is unknown.
func (e *engine) indexDest(ctx context.Context, dst Sink, f formats.Folder) (*FolderState, error) {
	ds, err := e.folderState(SideDest, f.Name)
	if err != nil {
		return nil, err
	}
	if ds.Validity != f.Validity || int(f.Messages) < len(ds.IDs) {
		if err := e.reset(SideDest, f.Name, f.Validity); err != nil {
			return nil, err
		}
		ds = &FolderState{Validity: f.Validity, IDs: map[string]formats.Key{}}
	}
	if f.UIDNext != 0 && f.UIDNext == ds.UIDNext {
		return ds, nil
	}
	if f.UIDNext != 0 && f.Messages == 0 { // an IMAP folder that is empty: nothing to index
		if err := e.mark(SideDest, f.Name, f.Validity, f.UIDNext); err != nil {
			return nil, err
		}
		ds.UIDNext = f.UIDNext
		return ds, nil
	}
	var recs []Record
	err = dst.Index(ctx, f, func(id string) bool { _, ok := ds.IDs[id]; return ok }, func(id string, key formats.Key) error {
		ds.IDs[id] = key
		recs = append(recs, Record{SideDest, f.Name, id, key})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := e.add(recs); err != nil {
		return nil, err
	}
	if f.UIDNext != 0 {
		ds.UIDNext = f.UIDNext
		if err := e.mark(SideDest, f.Name, f.Validity, f.UIDNext); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func (e *engine) filtered() bool { return !e.opts.Since.IsZero() || !e.opts.Before.IsZero() }

// copyFolder is one pass over one folder: list, decide, copy, record.
func (e *engine) copyFolder(ctx context.Context, src Source, dst Sink, pf PlannedFolder) (FolderReport, error) {
	f := pf.Source
	name := formats.DisplayName(f.Path)
	fr := FolderReport{Source: name, Note: pf.Note}
	fr.Destination, _ = formats.JoinFolder(pf.Dest, dst.Separator())

	// The source side of the ledger is kept per source folder and the
	// destination it maps to: a changed --map or --prefix starts afresh
	// (and the destination's index still prevents duplicates).
	srcKey := f.Name + "\x00" + formats.DisplayName(pf.Dest)
	ss, err := e.folderState(SideSource, srcKey)
	if err != nil {
		return fr, err
	}
	// The no-op rerun: the folder was complete through this UIDNEXT.
	if !e.filtered() && e.opts.Dedup != DedupAccount && !e.opts.DeleteSource && f.UIDNext != 0 &&
		ss.UIDNext == f.UIDNext && ss.Validity == f.Validity {
		fr.Found, fr.Skipped = int(f.Messages), int(f.Messages)
		return fr, nil
	}

	// Destination: create, then bring its index up to date.
	var dstF formats.Folder
	ds := &FolderState{IDs: map[string]formats.Key{}}
	if e.opts.DryRun {
		if n, ok := dst.(interface{ FolderName([]string) string }); ok {
			fr.Destination = n.FolderName(pf.Dest) // with a namespace prefix
		}
		if existing, ok := findFolder(dst, ctx, pf.Dest); ok {
			dstF = existing
			fr.Destination = existing.Name
			if ds, err = e.indexDest(ctx, dst, dstF); err != nil {
				return fr, err
			}
		}
	} else {
		if dstF, err = dst.Ensure(ctx, pf.Dest); err != nil {
			return fr, err
		}
		fr.Destination = dstF.Name
		if ds, err = e.indexDest(ctx, dst, dstF); err != nil {
			return fr, err
		}
	}

	// Source: list and decide.
	validity, msgs, err := src.List(ctx, f)
	if err != nil {
		return fr, err
	}
	if validity != ss.Validity {
		if len(ss.IDs) > 0 {
			fr.Note = joinNote(fr.Note, "source UIDVALIDITY changed: matched against the destination again")
		}
		if err := e.reset(SideSource, srcKey, validity); err != nil {
			return fr, err
		}
		ss = &FolderState{Validity: validity, IDs: map[string]formats.Key{}}
	}
	if e.filtered() {
		msgs = filterDates(msgs, e.opts.Since, e.opts.Before)
	}
	fr.Found = len(msgs)

	avail := map[formats.Key]int{}
	for _, k := range ds.IDs {
		avail[k]++
	}
	var cand []formats.Message
	var handled []formats.Message
	occ := map[formats.Key]int{} // --dedup account: occurrences of a key in this folder
	for _, m := range msgs {
		if k, ok := ss.IDs[m.ID]; ok {
			fr.Skipped++
			avail[k]--
			occ[k]++
			handled = append(handled, m)
			continue
		}
		cand = append(cand, m)
	}
	needKeys := false
	switch e.opts.Dedup {
	case DedupAccount:
		needKeys = true
	case DedupFolder:
		for _, n := range avail {
			if n > 0 {
				needKeys = true
				break
			}
		}
	}
	keys := map[string]formats.Key{}
	if needKeys && len(cand) > 0 {
		err := src.Headers(ctx, f, cand, func(m formats.Message, h []byte) error {
			keys[m.ID] = formats.IdentityKey(h)
			return nil
		})
		if err != nil {
			return fr, err
		}
	}
	var toCopy []formats.Message
	var matched []Record
	var toBytes int64
	claims := map[string]int{} // message ID -> occurrence claimed (account)
	for _, m := range cand {
		if k, ok := keys[m.ID]; ok {
			dup := false
			switch e.opts.Dedup {
			case DedupFolder:
				if avail[k] > 0 {
					avail[k]--
					dup = true
				}
			case DedupAccount:
				occ[k]++
				dup = !e.claim(k, occ[k])
				if !dup {
					claims[m.ID] = occ[k]
				}
			}
			if dup {
				fr.Skipped++
				handled = append(handled, m)
				matched = append(matched, Record{SideSource, srcKey, m.ID, k})
				continue
			}
		}
		toCopy = append(toCopy, m)
		toBytes += max(m.Size, 0)
	}
	if e.opts.DryRun {
		fr.Copied = len(toCopy) // would be copied
		fr.Bytes = toBytes
		return fr, nil
	}
	if err := e.add(matched); err != nil {
		return fr, err
	}

	e.rep.FolderPlanned(name, len(toCopy), toBytes)
	e.rep.FolderStarted(name)
	type queued struct {
		m      formats.Message
		key    formats.Key
		header []byte
	}
	var (
		pending   []Record
		queue     []queued // stored as ErrQueued, waiting for Commit
		delivered = map[string]bool{}
		lastFlush = time.Now()
		dstUIDs   []uint32
		allUIDs   = true
		copiedNow []formats.Message
	)
	stored := func(m formats.Message, key formats.Key, id string) {
		pending = append(pending, Record{SideSource, srcKey, m.ID, key})
		if u, err := strconv.ParseUint(id, 10, 32); id != "" && err == nil {
			pending = append(pending, Record{SideDest, dstF.Name, id, key})
			dstUIDs = append(dstUIDs, uint32(u))
		} else {
			if id != "" {
				pending = append(pending, Record{SideDest, dstF.Name, id, key})
			}
			allUIDs = false
		}
		copiedNow = append(copiedNow, m)
		fr.Copied++
		fr.Bytes += max(m.Size, 0)
		e.rep.MessageCopied(name, max(m.Size, 0))
	}
	failed := func(m formats.Message, header []byte, err error) {
		fr.Failed++
		if n, ok := claims[m.ID]; ok {
			e.unclaim(keys[m.ID], n)
		}
		f := Failure{Folder: name, UID: m.UID, ID: m.ID, MessageID: formats.HeaderValue(header, "Message-ID"), Error: err.Error()}
		fr.failures = append(fr.failures, f)
		e.rep.MessageFailed(f)
	}
	// flush makes what was stored durable, learns the fate of what was
	// queued, and only then records it in the state.
	flush := func() error {
		if cm, ok := dst.(Committer); ok && len(queue) > 0 {
			res, err := cm.Commit(ctx)
			if err != nil {
				queue = queue[:0] // not one of them may be taken as stored
				return err
			}
			if len(res) != len(queue) {
				return fmt.Errorf("destination answered %d of %d queued messages", len(res), len(queue))
			}
			for i, r := range res {
				q := queue[i]
				switch {
				case r.Err == nil:
					stored(q.m, q.key, r.ID)
				case IsMessageError(r.Err):
					failed(q.m, q.header, r.Err)
				default:
					return r.Err
				}
			}
			queue = queue[:0]
		}
		if fl, ok := dst.(Flusher); ok {
			if err := fl.Flush(ctx); err != nil {
				return err
			}
		}
		if err := e.add(pending); err != nil {
			return err
		}
		pending, lastFlush = pending[:0], time.Now()
		return nil
	}
	ferr := src.Fetch(ctx, f, toCopy, func(m formats.Message, body io.Reader) error {
		delivered[m.ID] = true
		m.SourceFolder = name
		var kw formats.KeyWriter
		cr := &countingReader{r: body}
		id, err := dst.Store(ctx, dstF, m, m.Size, io.TeeReader(cr, &kw))
		if m.Size < 0 {
			m.Size = cr.n // POP3 tells the size only by the end of the message
		}
		switch {
		case errors.Is(err, ErrQueued):
			queue = append(queue, queued{m, kw.Key(), append([]byte(nil), kw.Header()...)})
		case IsMessageError(err):
			// Read on so that the failure can name the Message-ID.
			io.Copy(&kw, io.LimitReader(body, formats.MaxHeaderBytes))
			failed(m, kw.Header(), err)
		case err != nil:
			return err
		default:
			stored(m, kw.Key(), id)
		}
		if len(pending)+len(queue) >= flushEvery || time.Since(lastFlush) > flushInterval {
			return flush()
		}
		return nil
	})
	// What was stored before an error is complete: make it durable and record it.
	if err := flush(); err != nil && ferr == nil {
		ferr = err
	}
	if ferr != nil {
		return fr, ferr
	}
	vanished := 0
	for _, m := range toCopy {
		if !delivered[m.ID] {
			vanished++
		}
	}
	if vanished > 0 {
		fr.Skipped += vanished
		fr.Note = joinNote(fr.Note, fmt.Sprintf("%d messages vanished from the source during the run", vanished))
	}
	handled = append(handled, copiedNow...)
	if e.opts.DeleteSource {
		e.mu.Lock()
		e.deletes[f.Name] = append(e.deletes[f.Name], handled...)
		e.mu.Unlock()
	}
	// Marks: the source folder is complete through the UIDNEXT seen before
	// listing; the destination index through our own contiguous appends.
	if fr.Failed == 0 && vanished == 0 && !e.filtered() && f.UIDNext != 0 && validity == f.Validity {
		if err := e.mark(SideSource, srcKey, validity, f.UIDNext); err != nil {
			return fr, err
		}
	}
	if allUIDs && len(dstUIDs) > 0 && dstF.UIDNext != 0 && ds.UIDNext == dstF.UIDNext {
		next := dstF.UIDNext
		for _, u := range dstUIDs {
			if u != next {
				next = 0
				break
			}
			next++
		}
		if next != 0 {
			if err := e.mark(SideDest, dstF.Name, dstF.Validity, next); err != nil {
				return fr, err
			}
		}
	}
	return fr, nil
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

// unclaim undoes claim(k, n) for a copy that failed.
func (e *engine) unclaim(k formats.Key, n int) {
	e.mu.Lock()
	if e.have[k] == n {
		e.have[k] = n - 1
	}
	e.mu.Unlock()
}

// keepFailures adds one folder's failed messages to the run's.
func (e *engine) keepFailures(fs []Failure) {
	e.mu.Lock()
	e.failures = append(e.failures, fs...)
	e.mu.Unlock()
}

// State access that tolerates a run without state (dry run).
func (e *engine) folderState(side Side, name string) (*FolderState, error) {
	if e.state == nil {
		return &FolderState{IDs: map[string]formats.Key{}}, nil
	}
	return e.state.Folder(side, name)
}

func (e *engine) reset(side Side, name string, validity uint32) error {
	if e.state == nil {
		return nil
	}
	return e.state.Reset(side, name, validity)
}

func (e *engine) mark(side Side, name string, validity, next uint32) error {
	if e.state == nil {
		return nil
	}
	return e.state.SetMark(side, name, validity, next)
}

func (e *engine) add(recs []Record) error {
	if e.state == nil {
		return nil
	}
	return e.state.Add(recs)
}
