package migrate

import (
	"context"
	"errors"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// Optional capabilities of a Source or Sink are small interfaces found with
// As, which looks through wrappers (rate limits, size limits, presets) by
// their Unwrap methods, so that a wrapper never hides what is inside it.

// FolderNamer is a Sink that can tell the name Ensure would give a path
// (an IMAP server with a namespace prefix).
type FolderNamer interface {
	FolderName(path []string) string
}

// MarkOnlyDeleter is a Deleter that can only mark messages \Deleted, not
// expunge exactly them (IMAP without UIDPLUS).
type MarkOnlyDeleter interface {
	DeleteMarksOnly() bool
}

// FlagDropper is a Sink that leaves off a message the flags its
// destination folder cannot keep (IMAP PERMANENTFLAGS without \*) and
// tells which, by destination folder name.
type FlagDropper interface {
	DroppedFlags(folder string) []string
}

// Prober is a Sink that can make a folder of a unique name and remove it
// again: seen from the source, it tells whether both are one mailbox.
type Prober interface {
	// Probe creates the folder and returns the last component of its name
	// and a function that deletes it.
	Probe() (leaf string, remove func(), err error)
}

// ProbeSeer is a Source that can tell whether a folder whose name ends
// with leaf exists without listing every folder (IMAP: one LIST pattern).
// The same-mailbox probe uses it where the source has it.
type ProbeSeer interface {
	HasFolderEnding(leaf string) (bool, error)
}

// FlagUpdater is a Sink that can change the flags of messages it holds
// (IMAP): flags follow (cutover.go).
type FlagUpdater interface {
	// UpdateFlags adds and removes flags of messages in folder, each change
	// for the IDs it names. Flags the folder cannot keep are left out.
	UpdateFlags(ctx context.Context, folder formats.Folder, changes []FlagChange) error
}

// FlagReader is a Sink that can tell the current flags of messages it
// holds (IMAP: one UID FETCH FLAGS; an archive: its manifest), by ID. Flags
// follow uses it for messages with no recorded base, so that a copy that
// already has the source's flags is not counted as changed (decide.go).
type FlagReader interface {
	DestFlags(ctx context.Context, folder formats.Folder, ids []string) (map[string][]string, error)
}

// KeywordDeclarer is a Sink whose folders declare, before the first
// message, the keywords their messages carry (an mbox archive: Dovecot's
// X-IMAPbase line). A pass tells it the keywords of what it is about to
// copy.
type KeywordDeclarer interface {
	DeclareKeywords(folder formats.Folder, keywords []string)
}

// FlagChange is one group of messages that get the same flags added and
// removed; IDs are the sink's (in formats, so that the archive stores,
// which do not import migrate, can take it).
type FlagChange = formats.FlagChange

// GoneRecorder is a Sink that never deletes (an archive): for a message
// mailferry put there whose source message is gone, it records that
// instead (cutover.go).
type GoneRecorder interface {
	RecordGone(ctx context.Context, folder formats.Folder, ids []string) error
}

// DestDeleter is a Sink that can remove messages it holds by ID
// (--sync-deletions, IMAP only: archives never delete).
type DestDeleter interface {
	// DeleteDest removes exactly the messages ids of folder; marksOnly says
	// they were only marked \Deleted (no UIDPLUS).
	DeleteDest(ctx context.Context, folder formats.Folder, ids []string) (marksOnly bool, err error)
}

// DestMover is a Sink that can move messages it holds between its folders,
// bytes untouched (IMAP UID MOVE, or UID COPY and UID EXPUNGE): a message
// moved between source folders is moved at the destination (moves.go).
type DestMover interface {
	// MoveDest moves the messages ids of from into to and maps each ID it
	// moved to its new ID ("" when the destination did not say); what it
	// did not move stays where it was.
	MoveDest(ctx context.Context, from, to formats.Folder, ids []string) (map[string]string, error)
}

// ChangeWaiter is a Source that can wait for a change in a folder (IMAP
// IDLE): --watch starts its next pass at once instead of after --interval.
type ChangeWaiter interface {
	// WaitChange returns when the server reports a change in folder, after
	// max, or when ctx ends; ErrNoIdle at once when the server cannot.
	WaitChange(ctx context.Context, folder formats.Folder, max time.Duration) error
}

// ChangeLister is a Source that can list a folder it listed before by its
// changes (IMAP CONDSTORE: CHANGEDSINCE), so that a folder where one flag
// changed does not cost every message's flags (cutover.go).
type ChangeLister interface {
	// ListChanged is List, except for the messages known gives flags for
	// (under UIDVALIDITY validity): those whose flags changed since modseq
	// come with their flags, Size -1 and no Date (listed partly; a message
	// listed whole has a size, 0 at least), and those whose flags did not
	// change only by UID, in same (ascending): their flags are known's.
	ListChanged(ctx context.Context, folder formats.Folder, validity uint32, modseq uint64,
		known func(uid uint32) ([]string, bool)) (v uint32, msgs []formats.Message, same []uint32, err error)
	// Complete lists msgs (partial ones) whole: size, date and flags.
	Complete(ctx context.Context, folder formats.Folder, msgs []formats.Message) ([]formats.Message, error)
}

// ErrNoIdle says a ChangeWaiter's server cannot wait for changes.
var ErrNoIdle = errors.New("the server has no IDLE")

// As returns x, or the first value inside it (following Unwrap() Sink and
// Unwrap() Source), that implements T.
func As[T any](x any) (T, bool) {
	for x != nil {
		if t, ok := x.(T); ok {
			return t, true
		}
		switch w := x.(type) {
		case interface{ Unwrap() Sink }:
			x = w.Unwrap()
		case interface{ Unwrap() Source }:
			x = w.Unwrap()
		default:
			x = nil
		}
	}
	var zero T
	return zero, false
}

// StorePreparer is a Sink that can get ready to store before the first
// Store (IMAP: the MULTIAPPEND connection's greeting and login go out in
// the background). A first copy calls it beside its listing, any pass
// before it transfers; calling it again does nothing.
type StorePreparer interface {
	PrepareStore(ctx context.Context)
}

// WritePreparer is a Sink that can open a folder for changing ahead of
// time (IMAP: a read-write SELECT sent without waiting for its answer), so
// that the opening overlaps the listing of the source. A pass that will
// most likely change flags or delete in its destination folder calls
// PrepareWrite before it lists the source, and EndWrite once its flag
// changes and deletions are done; between the two the folder stays open
// for writing (one SELECT for both).
type WritePreparer interface {
	PrepareWrite(folder formats.Folder)
	EndWrite()
}
