package formats

import (
	"io"
	"slices"
	"strings"
	"time"
)

// Standard IMAP system flags, spelled as IMAP spells them. Keywords (any flag
// not starting with a backslash) are kept as they are.
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDraft    = `\Draft`
	FlagDeleted  = `\Deleted`
	FlagRecent   = `\Recent` // session-only: never stored anywhere
)

// Message is what an endpoint knows about one message before its bytes are read.
type Message struct {
	// ID is the source's stable identifier inside its folder: an IMAP UID in
	// decimal, a POP3 UIDL, a Maildir unique name or an mbox message number.
	ID string
	// UID is the IMAP UID where the source is IMAP, else 0.
	UID uint32
	// Size is the exact number of bytes the body reader will yield, or -1 when
	// the source cannot tell before reading (POP3).
	Size int64
	// Flags in IMAP spelling (`\Seen`, `$Forwarded`); never `\Recent`.
	Flags []string
	// Date is the internal (delivery) date; zero when unknown.
	Date time.Time
	// SourceFolder is the source folder's display name (formats.DisplayName).
	// The engine fills it before Sink.Store so that an archive can record it.
	SourceFolder string
}

// Folder describes one folder (mailbox) at an endpoint.
type Folder struct {
	// Path is the folder name split into its components. INBOX is always
	// spelled "INBOX" as the first component.
	Path []string
	// Name is the endpoint's own spelling of the whole name (for IMAP, the
	// UTF-8 name joined with the server's separator).
	Name string
	// SpecialUse is the RFC 6154 attribute (`\Sent`, `\Drafts`, `\Trash`,
	// `\Junk`, `\Archive`, `\All`, `\Flagged`) or "".
	SpecialUse string
	// NoSelect is true for a tree node that cannot hold messages
	// (\Noselect or \NonExistent).
	NoSelect bool
	// Messages, Bytes and UIDNext are filled where the endpoint reports them
	// cheaply (IMAP STATUS); zero otherwise.
	Messages uint32
	Bytes    int64
	UIDNext  uint32
	// Uncounted says a listing could not count the messages cheaply
	// (an mbox file): Messages is not known, not zero.
	Uncounted bool
	// Validity is the IMAP UIDVALIDITY or an equivalent token: when it
	// changes, every ID recorded for this folder is void.
	Validity uint32
	// HighestModSeq is the IMAP HIGHESTMODSEQ (CONDSTORE, RFC 7162): it
	// grows with every flag change or expunge; 0 when the endpoint cannot
	// tell.
	HighestModSeq uint64
	// Shared is true for a folder in another user's or a shared namespace
	// (RFC 2342), e.g. "shared/alice/Team" or "Public/Notices": someone
	// else's mail, copied only when asked and never deleted from.
	Shared bool
}

// DisplayName joins a path with "/", the separator mailferry shows users and
// accepts in --include, --exclude, --map and --prefix whatever the servers use.
func DisplayName(path []string) string { return strings.Join(path, "/") }

// CleanFlags returns flags without \Recent, without duplicates and with the
// five system flags spelled canonically, in their original order.
// (It runs for every message listed, so it compares in place instead of
// lower-casing copies: a message has a handful of flags.)
func CleanFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		if f == "" {
			continue
		}
		if strings.HasPrefix(f, `\`) {
			if strings.EqualFold(f, FlagRecent) {
				continue
			}
			for _, sys := range systemFlags {
				if strings.EqualFold(f, sys) {
					f = sys
					break
				}
			}
		}
		if !slices.ContainsFunc(out, func(o string) bool { return strings.EqualFold(o, f) }) {
			out = append(out, f)
		}
	}
	return out
}

var systemFlags = [...]string{FlagSeen, FlagAnswered, FlagFlagged, FlagDraft, FlagDeleted}

// Unreadable is the body a Source's Fetch passes for a message it lists but
// cannot read: a file it may not open, a FETCH of that message alone that
// the server answers NO. Its Read returns Err. The engine, finding it
// (UnreadableErr), stores nothing, names the message as failed in the
// report and goes on with the next; a whole run used to end at such a
// message, every rerun again.
type Unreadable struct{ Err error }

func (u Unreadable) Read([]byte) (int, error) { return 0, u.Err }

// ReadError returns the error that made the message unreadable. (Not
// named Unreadable: a struct embedding an Unreadable would have a field of
// that name, which hides a method of the same name.)
func (u Unreadable) ReadError() error { return u.Err }

// UnreadableErr is the error of a body that is (or embeds) an Unreadable,
// nil for any other body.
func UnreadableErr(body io.Reader) error {
	if u, ok := body.(interface{ ReadError() error }); ok {
		return u.ReadError()
	}
	return nil
}
