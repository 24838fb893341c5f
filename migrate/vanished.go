package migrate

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/formats"
)

// A source folder listed when the run began can be gone by the time its
// pass opens it: a user deleted or renamed it meanwhile, or it was never a
// folder (GNU mailutils lists the temporary lock file of a folder being
// rewritten, INBOX.<pid>.<time>.<host>, while it exists). Its pass then
// fails with the server's NO to EXAMINE (or a file system's "no such
// file"), which is not tried again; that failure used to end the whole run
// with exit 1, the other folders' copies cut short. imapsync warns and goes
// on, and so does mailferry: where the source, listed again, no longer
// shows the folder as one that can be opened, the folder is skipped with a
// warning and a note in the report. Nothing is deleted for it anywhere
// (--delete-source and --sync-deletions act only on a pass that finished),
// and a folder the source still lists fails by name as before.

// vanishedNote is the report's note on a folder gone from the source.
const vanishedNote = "the folder vanished from the source during the run: skipped"

// vanished reports whether pf's source folder, whose pass failed with err,
// is no longer at the source: a fresh connection lists the source's
// folders, and none has its name. A stopped
// run, a refused login or a destination folder refused is never taken for
// one, nor is a failure of the listing itself.
func (e *engine) vanished(ctx context.Context, pf PlannedFolder, err error) bool {
	if ctx.Err() != nil || errors.Is(err, ErrAuth) || IsFolderRefused(err) || pf.Source.NoSelect {
		return false
	}
	src, oerr := e.openSource(ctx)
	if oerr != nil {
		return false
	}
	defer src.Close()
	folders, lerr := src.Folders(ctx)
	if lerr != nil {
		return false
	}
	for _, f := range folders {
		if f.Name == pf.Source.Name {
			return false
		}
	}
	return true
}

// skipVanished is the report of a folder gone from the source (vanished):
// what its passes did, with the note, and a warning.
func (e *engine) skipVanished(fr FolderReport, pf PlannedFolder, err error) FolderReport {
	name := formats.DisplayName(pf.Source.Path)
	if fr.Source == "" {
		fr.Source = name
	}
	fr.Note = joinNote(fr.Note, vanishedNote)
	e.rep.Warn(fmt.Sprintf("folder %s: %v; the source no longer lists it: skipped", name, err))
	return fr
}
