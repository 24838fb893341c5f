package migrate

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Servers' dialects that the IMAP endpoint works around (issue 11), apart
// from the FETCH and LIST code in imap.go.

// pendingStatus is a STATUS (MESSAGES UIDNEXT UIDVALIDITY) under way, or
// the EXAMINE that stands in for it.
type pendingStatus struct {
	m      *IMAP
	status *imapclient.StatusCommand
	sel    *imapclient.SelectCommand
	name   string
}

// startStatus sends STATUS name, except for a name that is not an IMAP
// atom (a space, a quote, parentheses...): GNU mailutils imap4d answers
// STATUS with the name unquoted (`* STATUS My Folder (MESSAGES 1)`), which
// no parser can read and which breaks the connection, so any folder with a
// space aborted the whole run. For such names the same three numbers come
// from EXAMINE, whose answer never repeats the name. EXAMINE changes the
// selected folder: the next List or Store selects again.
func (m *IMAP) startStatus(name string) *pendingStatus {
	if isAtom(name) {
		return &pendingStatus{m: m, status: m.c.Status(name, &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true})}
	}
	m.selected, m.seqUID = "", nil
	return &pendingStatus{m: m, sel: m.c.Select(name, &imap.SelectOptions{ReadOnly: true}), name: name}
}

// Wait returns the STATUS data.
func (p *pendingStatus) Wait() (*imap.StatusData, error) {
	if p.status != nil {
		return p.status.Wait()
	}
	sd, err := p.sel.Wait()
	p.m.selected = ""
	if err != nil {
		return nil, err
	}
	n := sd.NumMessages
	return &imap.StatusData{Mailbox: p.name, NumMessages: &n, UIDNext: sd.UIDNext, UIDValidity: sd.UIDValidity}, nil
}

// isAtom reports whether an IMAP client sends name as an atom (unquoted):
// only then can a server's echo of it in STATUS be read whether or not the
// server quotes it. Non-ASCII letters are sent in modified UTF-7, which is
// atom-safe.
func isAtom(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if r >= 0x80 {
			continue
		}
		if r <= ' ' || r == 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return false
		}
	}
	return true
}
