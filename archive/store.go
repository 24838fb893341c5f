package archive

import (
	"context"
	"io"

	"github.com/mailferry/mailferry/formats"
)

// Store is what the Maildir and mbox stores have in common. Its method set
// includes those of migrate.Source and migrate.Sink (plus migrate.Flusher),
// checked at compile time in the migrate package's tests. The manifest
// Writer wraps any Store and is one itself.
//
// IDs: a Maildir message's ID is its unique name (the file name up to ":2,");
// an mbox message's ID is the decimal byte offset of its From_ line.
//
// Folders: a Store takes back the formats.Folder values its Folders and
// Ensure returned. It resolves one by its Name (the store's own spelling)
// when that is set, else by its Path, so formats.Folder{Path: p} works too
// (Verify relies on that). Every path component is encoded with
// formats.EncodeFSComponent (Maildir: under modified UTF-7, see
// formats.EncodeMaildirComponent) before it touches the file system: no
// folder name, however hostile, reaches outside the store's root.
//
// Durability: Store writes a message that is neither durable nor visible
// to readers until Flush returns nil; Close drops what was never flushed.
// A Store is used by one goroutine at a time; several Stores may work on
// one root at once (one per worker), each on its own folders.
//
// A store that keeps several messages per file should also implement
// Locator, so that the manifest learns each message's offset without
// opening it.
type Store interface {
	// Source side.
	Folders(ctx context.Context) ([]formats.Folder, error)
	List(ctx context.Context, folder formats.Folder) (uint32, []formats.Message, error)
	Headers(ctx context.Context, folder formats.Folder, msgs []formats.Message,
		fn func(m formats.Message, header []byte) error) error
	Fetch(ctx context.Context, folder formats.Folder, msgs []formats.Message,
		fn func(m formats.Message, body io.Reader) error) error

	// Sink side.
	Separator() rune
	Ensure(ctx context.Context, path []string) (formats.Folder, error)
	Index(ctx context.Context, folder formats.Folder, known func(id string) bool,
		fn func(id string, key formats.Key) error) error
	Store(ctx context.Context, folder formats.Folder, m formats.Message, size int64, body io.Reader) (string, error)
	Flush(ctx context.Context) error

	// Open returns the exact bytes of one stored and flushed message as the
	// source served them (for mbox: with the mboxrd escaping undone), for
	// Verify and the manifest's crash recovery. file is where it lives:
	// relative to the store root, slash-separated. A message that is not
	// there gives an error wrapping fs.ErrNotExist.
	Open(folder formats.Folder, id string) (rc io.ReadCloser, file string, err error)

	Close() error
}
