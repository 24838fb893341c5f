package archive

import (
	"context"
	"io"

	"github.com/mailferry/mailferry/formats"
)

// Store is what the Maildir and mbox stores have in common. Its method set
// includes those of migrate.Source and migrate.Sink (plus migrate.Flusher),
// checked at compile time in the migrate package's tests.
//
// IDs: a Maildir message's ID is its unique name (the file name up to ":2,");
// an mbox message's ID is the decimal byte offset of its From_ line.
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

	// Open returns the exact bytes of one stored message as the source served
	// them (for mbox: with the mboxrd escaping undone), for Verify.
	// file is the path relative to the store root where it lives.
	Open(folder formats.Folder, id string) (rc io.ReadCloser, file string, err error)

	Close() error
}
