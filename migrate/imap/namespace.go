package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"
)

// Namespaces (RFC 2342). A server with shared folders lists, beside the
// user's own (personal namespace), folders of other users ("shared/alice/Team"
// on Dovecot, "user.alice.Team" on Cyrus) and shared ones ("Public/Notices",
// Cyrus's top-level folders). They are someone else's mail: mailferry copies
// them only with --shared-folders (PlanOptions.SharedFolders), never deletes
// from them (the engine does not queue them for --delete-source, and
// IMAP.Delete refuses them), and never creates a folder in them at a
// destination (IMAP.Ensure refuses). A server without NAMESPACE has only a
// personal namespace: every folder is the user's.

// nsEntry is one namespace NAMESPACE announced.
type nsEntry struct {
	prefix   string
	delim    rune
	personal bool
}

// setNamespaces keeps what NAMESPACE answered, for sharedName.
func (m *IMAP) setNamespaces(ns *imap.NamespaceData) {
	m.ns = nil
	add := func(ds []imap.NamespaceDescriptor, personal bool) {
		for _, d := range ds {
			m.ns = append(m.ns, nsEntry{prefix: d.Prefix, delim: d.Delim, personal: personal})
		}
	}
	add(ns.Personal, true)
	add(ns.Other, false)
	add(ns.Shared, false)
}

// sharedName reports whether a folder name (the server's spelling) is in an
// other users' or a shared namespace: the namespace with the longest prefix
// the name falls under (the name itself, or the prefix without its trailing
// delimiter, as "shared" for "shared/") is not a personal one. INBOX is
// always the user's own; on a tie the personal namespace wins.
func (m *IMAP) sharedName(name string) bool {
	if strings.EqualFold(name, "INBOX") || len(m.ns) == 0 {
		return false
	}
	best, shared := -1, false
	for _, n := range m.ns {
		if !nsContains(n, name) {
			continue
		}
		if l := len(n.prefix); l > best || l == best && n.personal {
			best, shared = l, !n.personal
		}
	}
	return shared
}

// nsContains reports whether name is under the namespace's prefix (an
// "INBOX" at its start compared without case, as INBOX is) or is the
// prefix's own folder.
func nsContains(n nsEntry, name string) bool {
	p := n.prefix
	if p == "" {
		return true
	}
	eq := func(a, b string) bool {
		if len(a) != len(b) {
			return false
		}
		if len(b) >= 5 && strings.EqualFold(b[:5], "INBOX") && strings.EqualFold(a[:5], "INBOX") {
			return a[5:] == b[5:]
		}
		return a == b
	}
	if len(name) >= len(p) && eq(name[:len(p)], p) {
		return true
	}
	if n.delim != 0 && strings.HasSuffix(p, string(n.delim)) {
		return eq(name, strings.TrimSuffix(p, string(n.delim)))
	}
	return false
}
