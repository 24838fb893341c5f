package migrate

import (
	"errors"
	"fmt"

	"github.com/mailferry/mailferry/formats"
)

// A folder a server will not open (a NO to SELECT or EXAMINE: a folder
// whose files the server cannot read, a right missing, a server's internal
// error) and that it still lists (vanished.go takes the others) fails
// alone: its pass stops, the other folders are copied, and the run ends
// with exit 1 and the first such folder's error, as imapsync goes on past
// a folder it cannot select and ends with an error. Before, the first one
// ended the whole run at once, cutting the other folders' copies short,
// and every rerun ended at it again until it was excluded. The run's end
// still counts as a failure, so --sync-deletions and --delete-source, which
// act only after a run with no error, delete nothing.

// unopenedNote begins the report's note on a folder that could not be opened.
const unopenedNote = "could not be opened: "

// unopened reports whether err, a folder pass's, is a server's refusal to
// open a folder (FolderOpenError) in a run that goes on.
func unopened(err error) bool {
	var fe *FolderOpenError
	return errors.As(err, &fe) && !IsRetryable(err)
}

// failUnopened notes a folder that could not be opened in its report and
// keeps the error for the run's end (unopenedErr).
func (e *engine) failUnopened(fr FolderReport, pf PlannedFolder, err error) FolderReport {
	if fr.Source == "" {
		fr.Source = formats.DisplayName(pf.Source.Path)
	}
	fr.Note = joinNote(fr.Note, unopenedNote+err.Error())
	e.mu.Lock()
	e.unopened = append(e.unopened, fmt.Errorf("folder %s: %w", fr.Source, err))
	e.mu.Unlock()
	return fr
}

// unopenedErr is the run's error where folders could not be opened: the
// first, and how many others.
func (e *engine) unopenedErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch n := len(e.unopened); n {
	case 0:
		return nil
	case 1:
		return e.unopened[0]
	default:
		return fmt.Errorf("%w (and %d more folders that could not be opened: see the report)", e.unopened[0], n-1)
	}
}
