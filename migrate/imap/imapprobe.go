package imap

import (
	"crypto/rand"
	"encoding/hex"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// DeleteMarksOnly says Delete can only mark messages \Deleted on this
// server (no UIDPLUS, so no UID EXPUNGE of exactly them).
func (m *IMAP) DeleteMarksOnly() bool { return !m.caps.Has(imap.CapUIDPlus) }

// Probe creates a top-level folder of a random name in the personal
// namespace and returns its last component and a function that deletes it
// (see migrate.Prober). The DELETE is sent without waiting for its answer:
// the commands after it on this connection go out behind it, and Close
// reads it before it logs out.
func (m *IMAP) Probe() (string, func(), error) {
	var b [8]byte
	rand.Read(b[:])
	leaf := "mailferry-probe-" + hex.EncodeToString(b[:])
	name := m.nameOf([]string{leaf})
	if err := m.c.Create(name, nil).Wait(); err != nil {
		return "", nil, m.wrap("create "+name, err)
	}
	return leaf, func() { m.probeDeleted = m.c.Delete(name) }, nil
}

// HasFolderEnding reports whether any folder's name ends with leaf (see
// migrate.ProbeSeer): one LIST with a pattern, no STATUS, whatever the
// number of folders.
func (m *IMAP) HasFolderEnding(leaf string) (bool, error) {
	list, err := m.c.List("", "*"+leaf, nil).Collect()
	if err != nil {
		return false, m.wrap("list *"+leaf, err)
	}
	for _, l := range list {
		if strings.HasSuffix(l.Mailbox, leaf) {
			return true, nil
		}
	}
	return false, nil
}
