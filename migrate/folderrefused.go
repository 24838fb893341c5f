package migrate

import (
	"context"
	"errors"

	"github.com/mailferry/mailferry/formats"
)

// FolderRefusedError is a destination folder the server will not create
// (Cyrus refuses '%' in a name, a server may refuse a name's characters or
// its depth). It concerns that folder alone: every message of it is a
// failure named in the report, the other folders are copied, and the run
// ends with exit 3 — before, it aborted the whole run with exit 1.
type FolderRefusedError struct {
	Folder string // the destination folder's name
	Err    error
}

func (e *FolderRefusedError) Error() string { return e.Err.Error() }
func (e *FolderRefusedError) Unwrap() error { return e.Err }

// IsFolderRefused reports whether err concerns one destination folder only.
func IsFolderRefused(err error) bool {
	var f *FolderRefusedError
	return errors.As(err, &f)
}

// refused records every (selected) message of the source folder as failed
// because its destination folder was refused: cause is Ensure's error.
func (p *folderPass) refused(ctx context.Context, cause error) (FolderReport, error) {
	var fe *FolderRefusedError
	errors.As(cause, &fe)
	p.fr.Destination = fe.Folder
	if err := p.list(ctx); err != nil { // the ledger is loaded (begin)
		return p.fr, err
	}
	t := &transfer{p: p, d: &p.d, keys: p.keys, delivered: map[string]bool{}}
	inOrder(p.msgs, p.same, p.ss, func(m formats.Message, _ Entry, _ bool) {
		m.SourceFolder = p.name
		t.failed(m, "", cause)
	})
	p.e.rep.Warn("folder " + p.name + ": " + cause.Error() + ": its messages are not copied")
	return p.fr, nil
}
