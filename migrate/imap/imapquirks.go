package imap

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate"
)

// Servers' dialects that the IMAP endpoint works around, apart
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
		return &pendingStatus{m: m, status: m.c.Status(name, m.statusOptions())}
	}
	m.settle() // imapwrite.go
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
	return &imap.StatusData{Mailbox: p.name, NumMessages: &n, UIDNext: sd.UIDNext, UIDValidity: sd.UIDValidity, HighestModSeq: sd.HighestModSeq}, nil
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

// flagQuirks is what an IMAP sink learned of its folders' PERMANENTFLAGS
// and which flags it had to drop (per destination folder name).
type flagQuirks struct {
	mu      sync.Mutex
	perm    map[string][]imap.Flag // nil slice: the folder keeps every flag
	dropped map[string]map[string]bool
}

// systemFlags are the flags every server takes in APPEND without asking.
var systemFlags = map[string]bool{`\seen`: true, `\answered`: true, `\flagged`: true, `\deleted`: true, `\draft`: true}

// keepable returns flags without those the destination folder cannot keep
// and records those it drops (DroppedFlags). Its PERMANENTFLAGS is read
// with a SELECT the first time a message for the folder carries anything
// but the system flags (so most runs never ask): GNU mailutils answers
// PERMANENTFLAGS without \* and `BAD APPEND Unrecognized flag` to a
// keyword, which aborted the run. A folder whose SELECT fails or does not
// say PERMANENTFLAGS keeps everything, as before.
func (m *IMAP) keepable(folder string, flags []string) []string {
	unusual := false
	for _, f := range flags {
		if !systemFlags[strings.ToLower(f)] {
			unusual = true
			break
		}
	}
	if !unusual {
		return flags
	}
	q := &m.quirks
	q.mu.Lock()
	perm, known := q.perm[folder]
	q.mu.Unlock()
	if !known {
		perm = m.permanentFlags(folder)
		q.mu.Lock()
		if q.perm == nil {
			q.perm = map[string][]imap.Flag{}
		}
		q.perm[folder] = perm
		q.mu.Unlock()
	}
	if perm == nil {
		return flags
	}
	allowed := map[string]bool{}
	for _, f := range perm {
		if f == imap.FlagWildcard {
			return flags
		}
		allowed[strings.ToLower(string(f))] = true
	}
	kept := make([]string, 0, len(flags))
	for _, f := range flags {
		if allowed[strings.ToLower(f)] {
			kept = append(kept, f)
			continue
		}
		q.mu.Lock()
		if q.dropped == nil {
			q.dropped = map[string]map[string]bool{}
		}
		if q.dropped[folder] == nil {
			q.dropped[folder] = map[string]bool{}
		}
		q.dropped[folder][f] = true
		q.mu.Unlock()
	}
	return kept
}

// permanentFlags SELECTs folder (read-write: EXAMINE answers an empty
// PERMANENTFLAGS) and returns its PERMANENTFLAGS, nil when unknown.
func (m *IMAP) permanentFlags(folder string) []imap.Flag {
	m.settle() // imapwrite.go
	m.selected, m.seqUID = "", nil
	sd, err := m.c.Select(folder, nil).Wait()
	if err == nil {
		// Leave the read-write selection at once: mailutils, with a
		// folder selected read-write, loses messages APPENDed by the same
		// session when it later rewrites the mbox. Never CLOSE: it would
		// expunge (imapwrite.go).
		err = m.deselect()
	}
	m.selected = ""
	if err != nil || sd.PermanentFlags == nil {
		return nil
	}
	return append([]imap.Flag{}, sd.PermanentFlags...)
}

// DroppedFlags returns, sorted, the flags the destination folder could not
// keep and that were left off the messages stored there (migrate.FlagDropper).
func (m *IMAP) DroppedFlags(folder string) []string {
	m.quirks.mu.Lock()
	defer m.quirks.mu.Unlock()
	var out []string
	for f := range m.quirks.dropped[folder] {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// quotaRefusal reports whether a NO answer's text says the mailbox is full.
// [OVERQUOTA] (RFC 9208) is the standard code, but Cyrus answers `NO Over
// quota` and Courier `NO [ALERT] You exceeded your mail quota.`: without
// these, a full destination made every remaining message fail one by one
// instead of stopping the run.
func quotaRefusal(text string) bool {
	t := strings.ToLower(text)
	for _, s := range []string{"[overquota]", "over quota", "exceeded your mail quota", "quota exceeded"} {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// createRefusedButExists reports whether a refused CREATE concerned a
// folder that exists all the same: Courier answers `NO Cannot create this
// folder.` (no [ALREADYEXISTS]) when another worker has just created it,
// which made the run exit 1. A NO to CREATE followed by a successful
// STATUS (sent right after it) created nothing because nothing was missing.
func createRefusedButExists(err error, status *pendingStatus) bool {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return false
	}
	_, serr := status.Wait()
	return serr == nil
}

// createFailed classifies a CREATE the server refused: a full account is
// migrate.ErrQuota; any other NO refuses this one folder (migrate.FolderRefusedError: the
// run goes on with the others); anything else is the connection's.
func (m *IMAP) createFailed(name string, err error) error {
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo {
		return m.wrap("create "+name, err)
	}
	if ie.Code == imap.ResponseCodeOverQuota || quotaRefusal(ie.Text) {
		return fmt.Errorf("%w: %s: %s", migrate.ErrQuota, m.cfg, ie.Text)
	}
	return &migrate.FolderRefusedError{Folder: name, Err: fmt.Errorf("destination refused to create folder %q: %s", name, ie.Text)}
}
