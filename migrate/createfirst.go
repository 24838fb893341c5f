package migrate

import (
	"context"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Folders first: before the workers start, the destination folders the
// plan needs and the destination does not have are created on one
// connection, all at once, while no other connection of the run is busy
// (FolderPreparer).
//
// Dovecot 2.3.19 (Debian 12's) keeps its folder list in an index that a
// CREATE marks for a rescan of the mail directory, done lazily. A CREATE
// while another session of the same user lists folders (a worker's
// connection opening, another worker's CREATE) can leave the new folder out
// of that index for good: it holds its messages and SELECT opens it, but
// LIST does not show it, so no mail program does. TestSharedFoldersNotCopiedNorDeleted
// failed so in CI (and in 2 of 25 local runs with a first version of this
// step that created folders while the pre-dialled connections were still
// listing: the folder's message copied, deleted at the source, SELECT finds
// it, LIST does not; 0 of 40 since). Two CREATEs at once can also crash a
// session ("dovecot.list.index.log ... Resource deadlock avoided"). So the
// run waits for its pre-dialled connections (they LIST as they open) and
// creates every missing folder on one connection, with a STATUS of each
// (and of the workers' first folders that exist, INBOX):
// the first pass into a folder made so takes those counts (takeMade)
// instead of sending a CREATE and STATUS of its own, a round trip saved. A
// worker's Ensure still creates what is missing (a folder this step could
// not make is then refused by name, as before).
//
// The sources are not held up meanwhile: each worker's first folder's
// listing is sent on its source connection before the CREATEs go out
// (worker.beginFirst), and read once its pass goes on, so that on a slow
// link the two round trips overlap; the connection each worker stores
// with logs in meanwhile too (a login lists nothing). The worker's own
// destination connection is used after createFirst only. Where both sides
// may be the same account (Job.MaybeSameAccount) and notSameMailbox did
// not prove two, the source waits too.

// FolderPreparer is a Sink that can create many folders in one go (IMAP:
// CREATE, SUBSCRIBE and STATUS of every folder pipelined on one
// connection). made[i] is paths[i] as Ensure would have returned it just
// after making it, or for a folder that exists (INBOX), as Ensure would
// return it now (the zero Folder where it cannot tell: the worker's pass
// then calls Ensure). A folder it cannot create is left for Ensure to
// report; the error is the connection's.
type FolderPreparer interface {
	EnsureAll(ctx context.Context, paths [][]string) (made []formats.Folder, err error)
}

// toCreateFirst is what createFirst creates: the destination folders of
// plan that the destination did not list, where more than one worker would
// otherwise create them (nil: nothing to do first). After them come the
// workers' first folders that exist already (INBOX always does), whose
// STATUS goes out in the same round trip: the largest folder, which the
// run waits for last, would otherwise ask its own after the round.
func (e *engine) toCreateFirst(dst Sink, plan []PlannedFolder, jobs int) [][]string {
	if _, ok := As[FolderPreparer](dst); !ok || e.opts.DryRun || min(jobs, len(plan)) < 2 {
		return nil
	}
	var missing [][]string
	for _, pf := range plan {
		if _, ok := e.listedDest(pf.Dest); !ok && !formats.IsInbox(pf.Dest) {
			missing = append(missing, pf.Dest)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	for _, i := range dispatchOrder(plan, jobs)[:min(jobs, len(plan))] {
		if _, ok := e.listedDest(plan[i].Dest); ok || formats.IsInbox(plan[i].Dest) {
			missing = append(missing, plan[i].Dest)
		}
	}
	return missing
}

// createFirst creates the folders toCreateFirst gave (and counts those that
// exist), once the pre-dialled connections are open.
func (e *engine) createFirst(ctx context.Context, dst Sink, paths [][]string, pre *predialed) {
	if len(paths) == 0 {
		return
	}
	fp, ok := As[FolderPreparer](dst)
	if !ok {
		return
	}
	pre.wait()
	// A connection lost here is found again by the first worker, which
	// reconnects and retries as after any lost connection.
	made, _ := fp.EnsureAll(ctx, paths)
	e.made = map[string]formats.Folder{}
	for i, f := range made {
		// A destination folder other planned folders share is counted
		// afresh by each pass (as worker.startNext does).
		if f.Name != "" && !e.sharedDest[destKey(paths[i])] {
			e.made[madeKey(paths[i])] = f
		}
	}
}

// madeKey is a planned destination path's key in engine.made.
func madeKey(path []string) string { return strings.Join(path, "\x00") }

// takeMade returns, once, the folder createFirst made at path with its
// counts right after, for the pass's destination() in place of Ensure:
// the round trip of a second CREATE and STATUS saved. Only the first pass
// into it takes it; a pass tried again calls Ensure.
func (e *engine) takeMade(path []string) (formats.Folder, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, ok := e.made[madeKey(path)]
	delete(e.made, madeKey(path))
	return f, ok
}
