package migrate

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/mailferry/mailferry/formats"
)

// The cutover: later passes carry flag changes, and with --sync-deletions
// deletions, from the source to the destination (the rules are in
// decide.go).
//
// Flags follow runs in every pass whose sink can change flags (IMAP): the
// source flags come with the listing (one UID FETCH 1:* per folder), the
// changes go out as UID STORE +FLAGS.SILENT / -FLAGS.SILENT grouped by
// identical change, and the new bases are recorded. A source with
// CONDSTORE shows its HIGHESTMODSEQ in the folder listing; it is recorded
// once a pass has followed the flags, so a folder whose UIDNEXT and
// HIGHESTMODSEQ did not move keeps the no-op shortcut. Without CONDSTORE a
// folder is listed on every run.
//
// Deletions are decided per folder but carried out once every folder is
// done, and only after a run in which nothing failed: a message moved from
// folder A to folder B at the source is first copied into B, and only then
// deleted from A at the destination.

// destDeletes is what --sync-deletions removes from one destination folder.
type destDeletes struct {
	name   string         // the source folder's display name (its report row)
	folder formats.Folder // the destination folder
	uids   []string
	gone   []Record // the source ledger entries to forget once deleted
	// mark is the source mark to set once deleted (the no-op shortcut
	// must not skip a folder whose deletions are still owed).
	srcKey                  string
	validity, next, srcMsgs uint32
}

// cutoverUnchanged adds the cutover's conditions to the no-op shortcut:
// with --sync-deletions the source holds as many messages as when it was
// last in step, and where flags follow the source's HIGHESTMODSEQ is the
// one recorded.
func (e *engine) cutoverUnchanged(p *folderPass, srcMessages uint32) (bool, error) {
	f := p.pf.Source
	if p.countsGone() && srcMessages != f.Messages+1 {
		return false, nil
	}
	if _, ok := As[FlagUpdater](p.dst); !ok {
		return true, nil
	}
	if f.HighestModSeq == 0 {
		return false, nil
	}
	ms, err := e.state.ModSeq(SideSource, p.srcKey)
	return err == nil && ms == f.HighestModSeq, err
}

// prepareWrite has the sink open the destination folder for writing while
// the source folder is listed, when the pass will most likely change flags
// or delete there: the folder was synced before and has no new mail, yet
// it is not unchanged (its HIGHESTMODSEQ or message count moved). It
// returns what ends the writing, or nil.
func (p *folderPass) prepareWrite() func() {
	wp, ok := As[WritePreparer](p.dst)
	f := p.pf.Source
	if !ok || p.e.opts.DryRun || p.e.filtered() || f.UIDNext == 0 || p.dstF.Name == "" {
		return nil
	}
	v, next, _, err := p.e.state.Mark(SideSource, p.srcKey)
	if err != nil || v != f.Validity || next != f.UIDNext {
		return nil
	}
	wp.PrepareWrite(p.dstF)
	return wp.EndWrite
}

// syncedCount is the message count the source mark records: 1 + the
// source folder's count when a pass with --sync-deletions left nothing
// owed, 0 otherwise (then a later run with --sync-deletions never takes the
// no-op shortcut before it has compared the folders once).
func (p *folderPass) syncedCount() uint32 {
	if !p.countsGone() || p.deferMark {
		return 0
	}
	return p.pf.Source.Messages + 1
}

// countsGone says a message gone at the source matters to this pass:
// --sync-deletions deletes it, an archive records it.
func (p *folderPass) countsGone() bool {
	_, rec := As[GoneRecorder](p.dst)
	return p.e.opts.SyncDeletions || rec
}

// cutover follows the flags and plans the deletions of one pass; t is nil
// in a dry run, which only counts.
func (p *folderPass) cutover(ctx context.Context, t *transfer) error {
	if p.ss == nil || p.ds == nil || p.dstF.Name == "" {
		return nil
	}
	for _, r := range p.d.matched {
		p.ss.Put(r)
	}
	if err := p.followFlags(ctx, t == nil); err != nil {
		return err
	}
	if err := p.planDeletions(ctx, t == nil); err != nil {
		return err
	}
	return p.recordGone(ctx, t == nil)
}

// recordGone has an archive record the messages mailferry put there whose
// source message the complete listing of the folder lacks (archives never
// delete), and forgets them in the ledger, so that each is recorded once.
func (p *folderPass) recordGone(ctx context.Context, dry bool) error {
	gr, ok := As[GoneRecorder](p.dst)
	e, f := p.e, p.pf.Source
	if !ok || e.filtered() || p.validity != f.Validity || p.ss.Validity != p.validity {
		return nil
	}
	gone, where := decideGone(p.msgs, p.same, p.ss, p.ds, p.dstF.Validity)
	var ids []string
	var forget []Record
	for _, id := range gone {
		if d, ok := where[id]; ok {
			ids = append(ids, d)
			forget = append(forget, Record{Side: SideSource, Folder: p.srcKey, ID: id})
		}
	}
	p.fr.GoneAtSource = len(ids)
	if dry || len(ids) == 0 {
		return nil
	}
	ids, err := sinkIDs(ctx, p.dst, p.dstF, ids) // ledger.go
	if err != nil {
		return err
	}
	if err := gr.RecordGone(ctx, p.dstF, ids); err != nil {
		return err
	}
	return e.state.Forget(forget)
}

// followFlags applies the flags-follow rule and records the new bases.
func (p *folderPass) followFlags(ctx context.Context, dry bool) error {
	fu, ok := As[FlagUpdater](p.dst)
	if !ok {
		return nil
	}
	skip := make(map[string]bool, len(p.d.copy))
	for _, m := range p.d.copy {
		skip[m.ID] = true
	}
	plan := decideFlags(p.msgs, p.same, p.ss, p.ds, p.dstF.Validity, skip, p.srcKey, nil)
	if len(plan.baseless) > 0 {
		have, err := p.destFlags(ctx, plan.baseless)
		if err != nil {
			return err
		}
		if have != nil {
			plan = decideFlags(p.msgs, p.same, p.ss, p.ds, p.dstF.Validity, skip, p.srcKey, have)
		}
	}
	p.fr.FlagsUpdated = plan.updated
	if dry {
		return nil
	}
	var all []string
	for _, c := range plan.changes {
		all = append(all, c.IDs...)
	}
	named, err := sinkIDs(ctx, p.dst, p.dstF, all) // ledger.go: one read of the index
	if err != nil {
		return err
	}
	for i := range plan.changes {
		n := len(plan.changes[i].IDs)
		plan.changes[i].IDs, named = named[:n:n], named[n:]
	}
	if err := fu.UpdateFlags(ctx, p.dstF, plan.changes); err != nil {
		return err
	}
	if err := p.e.add(plan.records); err != nil {
		return err
	}
	if f := p.pf.Source; f.HighestModSeq != 0 && !p.e.filtered() && p.validity == f.Validity {
		return p.e.state.SetModSeq(SideSource, p.srcKey, f.HighestModSeq)
	}
	return nil
}

// destFlags reads the destination's flags of the messages at ids (the
// destination index's IDs), or nil where the sink cannot tell them.
func (p *folderPass) destFlags(ctx context.Context, ids []string) (map[string][]string, error) {
	fr, ok := As[FlagReader](p.dst)
	if !ok {
		return nil, nil
	}
	named, err := sinkIDs(ctx, p.dst, p.dstF, ids) // ledger.go
	if err != nil {
		return nil, err
	}
	flags, err := fr.DestFlags(ctx, p.dstF, named)
	if err != nil {
		return nil, err
	}
	have := make(map[string][]string, len(ids))
	for i, id := range ids {
		if f, ok := flags[named[i]]; ok {
			have[id] = f
		}
	}
	return have, nil
}

// listSource lists the source folder: by its changes since the recorded
// HIGHESTMODSEQ where the source can (CONDSTORE CHANGEDSINCE) and the folder
// was followed before, else whole. A message comes with its base as flags
// (unchanged since the base was recorded) only while the destination holds
// it; the others are listed whole.
func (p *folderPass) listSource(ctx context.Context, ss *FolderState) (uint32, []formats.Message, error) {
	e := p.e
	cl, ok := As[ChangeLister](p.src)
	if !ok || p.pf.Source.HighestModSeq == 0 || ss.Validity == 0 || e.filtered() || e.opts.Dedup == DedupAccount {
		return p.src.List(ctx, p.pf.Source)
	}
	ms, err := e.state.ModSeq(SideSource, p.srcKey)
	if err != nil || ms == 0 {
		if err != nil {
			return 0, nil, err
		}
		return p.src.List(ctx, p.pf.Source)
	}
	v, msgs, same, err := cl.ListChanged(ctx, p.pf.Source, ss.Validity, ms, p.knownFlags(ss))
	p.partial, p.same = true, same
	return v, msgs, err
}

// knownFlags gives the base of a source message that is at the
// destination: the UID mailferry stored it as still holds its key, or (found
// there by key) the destination folder holds the key.
func (p *folderPass) knownFlags(ss *FolderState) func(uint32) ([]string, bool) {
	var held *keyPool // the destination's keys, once a message needs them
	return func(uid uint32) ([]string, bool) {
		en, ok := ss.GetNum(uid)
		if !ok || !en.HasBase {
			return nil, false
		}
		if holdsRecorded(en, p.ds, p.dstF.Validity) {
			return en.Base, true
		}
		if en.Dst.UID != 0 {
			return nil, false
		}
		if held == nil {
			held = newKeyPool(p.ds.Len(), p.ds.Keys())
		}
		return en.Base, held.holds(en.Key)
	}
}

// listedPartly says whether m was listed by its changes only (ListChanged:
// Size -1, no date).
func (p *folderPass) listedPartly(m formats.Message) bool {
	return p.partial && m.Size < 0
}

// completeCopies lists whole the partially listed messages the decide step
// copies after all (the destination holds their key fewer times than the
// source): their size, date and flags.
func (p *folderPass) completeCopies(ctx context.Context) error {
	var want []formats.Message
	for _, m := range p.d.copy {
		if p.listedPartly(m) {
			want = append(want, m)
		}
	}
	if len(want) == 0 {
		return nil
	}
	cl, ok := As[ChangeLister](p.src)
	if !ok {
		return fmt.Errorf("partial listing from a source that cannot complete it")
	}
	got, err := cl.Complete(ctx, p.pf.Source, want)
	if err != nil {
		return err
	}
	byID := make(map[string]formats.Message, len(got))
	for _, m := range got {
		byID[m.ID] = m
	}
	p.d.bytes = 0
	copies := p.d.copy[:0]
	for _, m := range p.d.copy {
		if p.listedPartly(m) {
			var ok bool
			if m, ok = byID[m.ID]; !ok {
				continue // expunged meanwhile
			}
		}
		copies = append(copies, m)
		p.d.bytes += max(m.Size, 0)
	}
	p.d.copy = copies
	return nil
}

// planDeletions decides what --sync-deletions removes from this pass's
// destination folder and, in a run with new mail, queues it for the end of
// the run. It needs the complete listing of the source folder: no
// --since/--before, and the UIDVALIDITY the run began with. In a run where
// no source folder has new mail (e.deleteInPass) nothing can be a move, so
// the pass deletes at once, on its own connection, while the folder is
// fresh (deleteNow).
func (p *folderPass) planDeletions(ctx context.Context, dry bool) error {
	e, f := p.e, p.pf.Source
	if !e.opts.SyncDeletions || e.filtered() || p.validity != f.Validity || p.ss.Validity != p.validity {
		return nil
	}
	uids, gone := decideDeletions(p.msgs, p.same, p.ss, p.ds, p.dstF.Validity)
	if len(uids) == 0 {
		return nil
	}
	p.fr.DeletedAtDestination = len(uids) // a dry run's "would delete"; the run's end sets the real count
	p.deferMark = true
	dd := &destDeletes{name: p.name, folder: p.dstF, uids: uids, srcKey: p.srcKey,
		validity: p.validity, next: f.UIDNext, srcMsgs: f.Messages}
	for _, id := range gone {
		dd.gone = append(dd.gone, Record{Side: SideSource, Folder: p.srcKey, ID: id})
	}
	if dl, ok := As[DestDeleter](p.dst); ok && e.deleteInPass && !dry {
		return p.deleteNow(ctx, dl, dd)
	}
	e.mu.Lock()
	if e.dstDeletes == nil {
		e.dstDeletes = map[string]*destDeletes{}
	}
	e.dstDeletes[p.srcKey] = dd
	e.mu.Unlock()
	return nil
}

// deleteNow removes dd at the destination from the pass itself (a run with
// no new mail: nothing is a move) and brings the state in line.
func (p *folderPass) deleteNow(ctx context.Context, dl DestDeleter, dd *destDeletes) error {
	marksOnly, err := dl.DeleteDest(ctx, dd.folder, dd.uids)
	if err != nil {
		return err
	}
	p.e.mu.Lock()
	p.e.dstMarksOnly = p.e.dstMarksOnly || marksOnly
	p.e.mu.Unlock()
	return p.e.deletedAtDest(dd, marksOnly)
}

// noNewMail reports whether no planned source folder has mail the state
// has not seen (each has the UIDVALIDITY and UIDNEXT recorded; a folder
// without a recorded mark, or a server that gives no UIDNEXT, counts as
// new mail): then no pass copies a message that could be a move, and
// deletions need not wait for the end of the run.
func (e *engine) noNewMail(plan []PlannedFolder) (bool, error) {
	for _, pf := range plan {
		v, next, _, err := e.state.Mark(SideSource, ledgerFolder(pf))
		if err != nil {
			return false, err
		}
		if pf.Source.UIDNext == 0 || next != pf.Source.UIDNext || v != pf.Source.Validity {
			return false, nil
		}
	}
	return true, nil
}

// syncDeletions removes at the destination what the passes queued, after
// every folder is done and only if no message failed; it sets each
// folder's count in rep.
func (e *engine) syncDeletions(ctx context.Context, rep *Report) error {
	if !e.opts.SyncDeletions || e.opts.DryRun || len(e.dstDeletes) == 0 {
		return nil
	}
	for i := range rep.Folders {
		rep.Folders[i].DeletedAtDestination = 0
	}
	if n := len(e.failures); n > 0 {
		e.rep.Warn(fmt.Sprintf("--sync-deletions: %d messages failed to copy, so nothing is deleted at the destination in this run (a message moved between folders must arrive first)", n))
		return nil
	}
	keys := slices.Sorted(maps.Keys(e.dstDeletes))
	done := map[*destDeletes]bool{}
	return e.retry(ctx, "deleting at the destination", func() error {
		sink, err := e.openSink(ctx)
		if err != nil {
			return err
		}
		defer sink.Close()
		dd, ok := As[DestDeleter](sink)
		if !ok {
			e.rep.Warn("--sync-deletions: this destination cannot delete messages: nothing deleted")
			return nil
		}
		for _, k := range keys {
			set := e.dstDeletes[k]
			if done[set] {
				continue
			}
			set.uids = e.notMovedAway(set.folder.Name, set.uids) // moved, not deleted (moves.go)
			marksOnly := false
			if len(set.uids) > 0 {
				if marksOnly, err = dd.DeleteDest(ctx, set.folder, set.uids); err != nil {
					return err
				}
			}
			done[set] = true
			e.dstMarksOnly = e.dstMarksOnly || marksOnly
			for i := range rep.Folders {
				if rep.Folders[i].Source == set.name {
					rep.Folders[i].DeletedAtDestination += len(set.uids)
				}
			}
			if err := e.deletedAtDest(set, marksOnly); err != nil {
				return err
			}
		}
		return nil
	})
}

// deletedAtDest brings the state in line with a destination folder from which
// set.uids were removed (or only marked, then the index keeps them).
func (e *engine) deletedAtDest(set *destDeletes, marksOnly bool) error {
	if err := e.state.Forget(set.gone); err != nil {
		return err
	}
	if !marksOnly {
		var dst []Record
		for _, uid := range set.uids {
			dst = append(dst, Record{Side: SideDest, Folder: set.folder.Name, ID: uid})
		}
		if err := e.state.Forget(dst); err != nil {
			return err
		}
		v, next, n, err := e.state.Mark(SideDest, set.folder.Name)
		if err != nil {
			return err
		}
		if v == set.folder.Validity && n >= uint32(len(set.uids)) {
			if err := e.mark(SideDest, set.folder.Name, v, next, n-uint32(len(set.uids))); err != nil {
				return err
			}
		}
	}
	if set.next == 0 {
		return nil
	}
	return e.mark(SideSource, set.srcKey, set.validity, set.next, set.srcMsgs+1)
}

// dstID is a Record's destination ID from a sink's ID (a UID), in the
// destination folder f.
func dstID(f formats.Folder, id string) DstID {
	u, err := strconv.ParseUint(id, 10, 32)
	if err != nil || f.UIDNext == 0 {
		return DstID{} // not an IMAP UID: a local store's name
	}
	return DstID{Validity: f.Validity, UID: uint32(u)}
}

// forgetDeleted drops from the source ledger what --delete-source removed:
// a later --sync-deletions must never take it for "gone at the source" and
// delete the only copy left, the destination's.
func (e *engine) forgetDeleted() error {
	var recs []Record
	for _, set := range e.deletes {
		for _, m := range set.msgs {
			recs = append(recs, Record{Side: SideSource, Folder: set.srcKey, ID: m.ID})
		}
	}
	return e.state.Forget(recs)
}

// warnNoDestDeletes says at the start when --sync-deletions can do nothing:
// the destination cannot delete (an archive never does).
func (e *engine) warnNoDestDeletes(dst Sink) {
	if _, ok := As[DestDeleter](dst); e.opts.SyncDeletions && !ok {
		e.rep.Warn("--sync-deletions: " + e.job.DestName + " cannot delete messages (archives never delete): nothing will be deleted there")
	}
}
