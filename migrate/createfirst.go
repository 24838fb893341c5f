package migrate

import (
	"context"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Folders first: before the workers start, the destination folders the
// plan needs and the destination does not have are created on one
// connection, all at once, while no other connection of the run is busy
// (FolderPreparer), and then looked up by LIST.
//
// Dovecot 2.3.19 (Debian 12's) keeps its folder list in an index that a
// CREATE marks for a rescan of the mail directory. A CREATE while another
// session of the same user lists folders (a worker's connection opening,
// another worker's CREATE) can leave the new folder out of that index: it
// holds its messages and SELECT opens it, but LIST does not show it, so no
// mail program does (seen in TestSharedFoldersNotCopiedNorDeleted, the
// folder's message copied and deleted at the source). Two CREATEs at once
// can also crash a session ("dovecot.list.index.log ... Resource deadlock
// avoided"). So the run waits for its pre-dialled connections (they LIST
// as they open), creates every missing folder on one connection, and lists
// the new folders there once more, which makes Dovecot rescan while
// nothing else of ours is running. A folder still not listed is said in a
// warning. A worker's Ensure still creates what is missing (a folder this
// step could not make is then refused by name, as before).

// FolderPreparer is a Sink that can create many folders in one go (IMAP:
// CREATE and SUBSCRIBE of every folder pipelined on one connection, then a
// LIST of each). It returns the folders it created that the server then
// did not list. A folder it cannot create is left for Ensure to report;
// the error is the connection's.
type FolderPreparer interface {
	EnsureAll(ctx context.Context, paths [][]string) (unlisted []string, err error)
}

// createFirst creates the destination folders of plan that the destination
// did not list, once the pre-dialled connections are open, when more than
// one worker would otherwise create them.
func (e *engine) createFirst(ctx context.Context, dst Sink, plan []PlannedFolder, jobs int, pre *predialed) {
	fp, ok := As[FolderPreparer](dst)
	if !ok || e.opts.DryRun || min(jobs, len(plan)) < 2 {
		return
	}
	var missing [][]string
	for _, pf := range plan {
		if _, ok := e.listedDest(pf.Dest); !ok && !formats.IsInbox(pf.Dest) {
			missing = append(missing, pf.Dest)
		}
	}
	if len(missing) == 0 {
		return
	}
	pre.wait()
	unlisted, err := fp.EnsureAll(ctx, missing)
	if err != nil {
		// A connection lost here is found again by the first worker, which
		// reconnects and retries as after any lost connection.
		return
	}
	if len(unlisted) > 0 {
		e.rep.Warn(e.job.DestName + ": the server does not list the new folders " + strings.Join(unlisted, ", ") +
			" although it made them (its folder index missed them: Dovecot's needs `doveadm mailbox list` or a new folder to rescan); their messages are copied")
	}
}
