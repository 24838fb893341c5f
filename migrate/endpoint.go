package migrate

import (
	"context"
	"errors"
	"io"

	"github.com/mailferry/mailferry/formats"
)

// Source is where messages come from: an IMAP or POP3 server, a Maildir
// tree or an mbox directory.
//
// A Source is used by one goroutine at a time; the engine opens one Source
// per worker.
type Source interface {
	// Folders lists every folder, parents before children. Tree nodes that
	// cannot hold messages are included with NoSelect set.
	Folders(ctx context.Context) ([]formats.Folder, error)

	// List returns the folder's validity token and its messages in ascending
	// order of their stable IDs (UID order for IMAP), with size, flags and
	// internal date. An empty folder returns no messages and no error.
	List(ctx context.Context, folder formats.Folder) (validity uint32, msgs []formats.Message, err error)

	// Headers calls fn once for each message of msgs that still exists, with
	// its header block (see formats.HeaderBlock); fn may not keep header.
	Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
		fn func(m formats.Message, header []byte) error) error

	// Fetch calls fn once for each message of msgs that still exists, in any
	// order, with a reader that yields exactly the bytes the source serves
	// (m.Size bytes, or until EOF when m.Size is -1). fn must consume or
	// abandon body before returning and may not keep it. A message that
	// vanished from the source is not passed to fn; the engine notices.
	// A message the source lists but cannot read (a file it may not open,
	// a FETCH of it alone answered NO) is passed with a formats.Unreadable
	// as its body: the engine names it as failed and goes on.
	// An error returned by fn stops Fetch and is returned.
	Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
		fn func(m formats.Message, body io.Reader) error) error

	// Close ends the session (for POP3: without deleting anything unless
	// Deleter.Delete was called and Commit asked).
	Close() error
}

// RangeLister is a Source that can list part of a folder (IMAP): the
// messages whose UIDs lie in [first, last], as List would give them. The
// engine copies a large folder in such windows for its first copy only
// (window.go).
type RangeLister interface {
	ListUIDs(ctx context.Context, folder formats.Folder, first, last uint32) (validity uint32, msgs []formats.Message, err error)
}

// AheadLister is a RangeLister that can send the listing of the next
// window before the window in hand is transferred (IMAP: the FETCH goes
// out at once and its answers are read aside), so that a window costs no
// round trip of its own on a slow link. wait gives what ListUIDs would;
// ListUIDsAhead returns nil where it cannot (then ListUIDs). A listing
// sent ahead is always waited for, also when the pass ends early.
type AheadLister interface {
	ListUIDsAhead(ctx context.Context, folder formats.Folder, first, last uint32) (wait func() (validity uint32, msgs []formats.Message, err error))
}

// ListStarter is a Source that can send a listing of another folder
// before its answers are read (IMAP: the EXAMINE and the FETCH go out at
// once and their answers are read aside), so that the next folder's
// listing travels while the destination answers the last batch of the
// folder before (folder.go: the next folder's first round trips). last 0
// lists the whole folder, as List; else the UIDs in [first, last], as
// ListUIDs. wait gives what those would; it must be called once, before
// any other use of the source. StartList returns nil where it cannot.
type ListStarter interface {
	StartList(ctx context.Context, folder formats.Folder, first, last uint32) (wait func() (validity uint32, msgs []formats.Message, err error))
}

// FetchStarter is a Source that can send a Fetch's first commands before
// its answers are read (IMAP: the FETCHes of the next window go out while
// the destination answers the last batch of the window before, so that a
// window costs no round trip of its own on a slow link). The function it
// returns is the rest of that Fetch and must be called once, before any
// other use of the source; StartFetch returns nil where it cannot (then
// Fetch).
type FetchStarter interface {
	StartFetch(folder formats.Folder, msgs []formats.Message) (fetch func(ctx context.Context, fn func(m formats.Message, body io.Reader) error) error)
}

// Sink is where messages go: an IMAP server, a Maildir tree or an mbox
// directory. A Sink is used by one goroutine at a time.
type Sink interface {
	// Separator is the hierarchy separator of the destination (0: flat).
	Separator() rune

	// Folders lists the folders that exist at the destination.
	Folders(ctx context.Context) ([]formats.Folder, error)

	// Ensure creates the folder (and any missing parents) if it does not
	// exist, and returns it with Name, Validity, UIDNext and Messages filled
	// where the sink can tell. path is in the engine's components; the sink
	// joins it with its separator (formats.JoinFolder) or its own encoding.
	Ensure(ctx context.Context, path []string) (formats.Folder, error)

	// Index calls fn with the ID and identity key of every message in folder
	// whose ID known reports false. IDs are the sink's own (an IMAP UID in
	// decimal, a Maildir unique name, an mbox offset).
	Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
		fn func(id string, key formats.Key) error) error

	// Store writes one message: exactly size bytes from body (size -1: until
	// EOF), with m's flags and date. It returns the new message's ID at the
	// destination, or "" when the sink cannot tell (IMAP without UIDPLUS).
	// When Store returns nil the message is durable, unless the sink is also
	// a Flusher: then it is durable once Flush returns nil.
	Store(ctx context.Context, folder formats.Folder, m formats.Message, size int64, body io.Reader) (id string, err error)

	// Close releases the sink. It does not imply Flush.
	Close() error
}

// Flusher is a Sink that batches durability (Maildir, mbox): messages stored
// since the last Flush are durable only once Flush returns nil. The engine
// records messages in its state only after that.
type Flusher interface {
	Flush(ctx context.Context) error
}

// ErrQueued is what a Committer's Store returns for a message it queued
// rather than stored: the message's outcome comes from the next Commit.
var ErrQueued = errors.New("queued")

// Committer is a Sink that may queue messages (IMAP MULTIAPPEND): Commit
// makes every queued message durable or refused and returns, in the order
// of the Store calls that returned ErrQueued, each one's result. An error
// from Commit itself means no queued message may be taken as stored.
type Committer interface {
	Commit(ctx context.Context) ([]StoreResult, error)
}

// PartialCommitter is a Committer that can give the outcomes of its oldest
// queued messages while the newest are still in flight: CommitSome returns,
// in queue order, the results of a prefix of the queue (maybe empty). The
// engine calls it between the batches of a folder, so that the link to the
// destination does not idle while the newest batches are answered; a folder's
// last flush is a Commit.
type PartialCommitter interface {
	CommitSome(ctx context.Context) ([]StoreResult, error)
}

// BatchCarrier is a PartialCommitter that says whether a full window's
// newest batch may stay in flight across the window's end, to be recorded
// by the next window's transfer (window.go). It costs a second batch in
// memory, so IMAP allows it only on a slow link, where the wait idles the
// destination for a round trip at every window.
type BatchCarrier interface {
	CarryBatch() bool
}

// EnsureStarter is a Sink that can send Ensure's commands before their
// answers are read (IMAP: CREATE, SUBSCRIBE and STATUS go out on the
// main connection while the appender's last batch of the folder before is
// answered). wait gives what Ensure would. StartEnsure returns nil where
// it cannot (then Ensure).
type EnsureStarter interface {
	StartEnsure(ctx context.Context, path []string) (wait func() (formats.Folder, error))
}

// FolderLearner is a Sink whose fresh connection must list the folders
// before it can tell which exist (IMAP: Ensure then skips the CREATE of a
// folder it saw). Each worker's new connection to such a sink lists them
// (or is told them: FolderTeller); a local store, whose listing counts
// every message file, is not asked.
type FolderLearner interface {
	LearnFolders(ctx context.Context) error
}

// LostReporter is a Sink that knows which source messages' copies it has
// lost since they were stored (an archive: its manifest records the source
// folder and ID of each copy, and Ensure looks for what is missing). The
// pass matches those last, so that where several messages of a folder
// share an identity key, the one copied again is the one whose copy is
// gone. Called after Ensure; nil where nothing is lost.
type LostReporter interface {
	LostSources(folder formats.Folder, sourceFolder string) map[string]bool
}

// FolderTeller is a FolderLearner that can be told which folders exist
// instead: a worker's new connection takes the run's own listing of the
// destination, made moments before by the first connection, and saves the
// round trip of listing again (IMAP: LIST RETURN (STATUS)).
type FolderTeller interface {
	KnowFolders(folders []formats.Folder)
}

// StoreResult is one queued message's outcome: its ID at the destination
// ("" if unknown), or the *MessageError that refused it.
type StoreResult struct {
	ID  string
	Err error
}

// Deleter is a Source that can remove messages once they are durably copied
// and recorded (--delete-source). The engine calls it only after a run with
// no fatal error.
type Deleter interface {
	Delete(ctx context.Context, folder formats.Folder, msgs []formats.Message) error
}
