package imap

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// A delta pass opens its destination folder read-write ahead of time
// (migrate.WritePreparer): the SELECT goes out while the source folder is
// listed and the pass decides, and its answer is read only when the first
// flag change or deletion needs it (settle). The folder then stays
// selected from the flag changes to the deletions, and EndWrite leaves it
// with a command whose answer is read with the next one.

var _ migrate.WritePreparer = (*IMAP)(nil)

// ahead is a command sent without waiting for its answer: a read-write
// SELECT of name (PrepareWrite), or what leaves a folder (EndWrite).
type ahead struct {
	sel   *imapclient.SelectCommand
	name  string
	leave *imapclient.Command // UNSELECT
	// noFolder: sel is the SELECT of noFolder that leaves a folder where the
	// server has no UNSELECT (deselect).
	noFolder bool
}

// PrepareWrite sends a read-write SELECT of folder and returns at once.
func (m *IMAP) PrepareWrite(folder formats.Folder) {
	m.settle()
	m.writing = folder.Name
	if m.selected == folder.Name && !m.readOnly {
		return
	}
	m.selected, m.seqUID, m.listed, m.rw = "", nil, nil, nil
	m.ahead = &ahead{sel: m.c.Select(folder.Name, nil), name: folder.Name}
}

// EndWrite leaves the folder PrepareWrite opened, without waiting.
func (m *IMAP) EndWrite() {
	m.settle()
	name := m.writing
	m.writing = ""
	if name == "" || m.selected != name || m.readOnly {
		return
	}
	m.selected, m.seqUID, m.listed, m.rw = "", nil, nil, nil
	if m.caps.Has(imap.CapUnselect) {
		m.ahead = &ahead{leave: m.c.Unselect()}
		return
	}
	m.ahead = &ahead{sel: m.c.Select(noFolder, &imap.SelectOptions{ReadOnly: true}), noFolder: true}
}

// settle reads the answer of the command sent ahead, if any, and brings
// the selection state in line with it. Every method that selects calls it
// first.
func (m *IMAP) settle() {
	a := m.ahead
	if a == nil {
		return
	}
	m.ahead = nil
	switch {
	case a.leave != nil:
		a.leave.Wait() // one that failed leaves nothing to undo: the next SELECT replaces the selection
	case a.noFolder:
		a.sel.Wait() // refused, as meant
		m.left = m.c.Mailbox()
	default:
		sd, err := a.sel.Wait()
		if err != nil {
			return // the selection fails again where it is needed, with its error
		}
		m.selected, m.readOnly, m.seqUID, m.listed, m.rw = a.name, false, nil, nil, sd
	}
}

// noFolder is a name no folder has: SELECTing it leaves the selected
// folder (deselect).
const noFolder = "mailferry-no-such-folder-7f3a"

// deselect leaves the selected folder without expunging anything:
// UNSELECT (RFC 3691) where the server has it, else a SELECT of a name no
// folder has, since a SELECT that fails leaves no folder selected (RFC
// 3501, 6.3.1). An EXAMINE of the same folder would end a read-write
// selection too, but Courier then refuses an APPEND into that folder ("NO
// Current box is selected READ-ONLY.").
func (m *IMAP) deselect() error {
	m.settle()
	m.selected, m.seqUID, m.listed, m.rw = "", nil, nil, nil
	if m.caps.Has(imap.CapUnselect) {
		return m.c.Unselect().Wait()
	}
	m.c.Select(noFolder, &imap.SelectOptions{ReadOnly: true}).Wait() // refused, as meant
	m.left = m.c.Mailbox()
	return nil
}

// holds reports whether the server has folder selected: go-imap's view,
// except a folder left by a refused SELECT, which go-imap still shows.
func (m *IMAP) holds(folder string) bool {
	mb := m.c.Mailbox()
	return mb != nil && mb != m.left && mb.Name == folder
}
