package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestSharedName: which listed names are someone else's, for the
// namespace layouts real servers announce.
func TestSharedName(t *testing.T) {
	nd := func(prefix string, delim rune) []imap.NamespaceDescriptor {
		return []imap.NamespaceDescriptor{{Prefix: prefix, Delim: delim}}
	}
	for _, tc := range []struct {
		server string
		ns     *imap.NamespaceData
		names  map[string]bool // name -> shared
	}{
		{"Cyrus (INBOX. personal, user. others, \"\" shared)",
			&imap.NamespaceData{Personal: nd("INBOX.", '.'), Other: nd("user.", '.'), Shared: nd("", '.')},
			map[string]bool{"INBOX": false, "inbox": false, "INBOX.Sent": false, "Inbox.Archive.2023": false,
				"user.owner1.Team": true, "user.owner1": true, "user": true, "Company News": true}},
		{"Cyrus altnamespace", &imap.NamespaceData{Personal: nd("", '/'), Other: nd("Other Users/", '/'), Shared: nd("Shared Folders/", '/')},
			map[string]bool{"INBOX": false, "Sent": false, "Other Users/owner1/Team": true, "Other Users": true,
				"Shared Folders/News": true, "Other Users Archive": false}},
		{"Dovecot", &imap.NamespaceData{Personal: nd("", '/'), Other: nd("shared/", '/'), Shared: nd("Public/", '/')},
			map[string]bool{"INBOX": false, "Work": false, "shared/alice/Team": true, "shared": true, "sharedstuff": false,
				"Public/Notices": true, "Public": true, "Publications": false}},
		{"Courier (personal only)", &imap.NamespaceData{Personal: nd("INBOX.", '.')},
			map[string]bool{"INBOX": false, "INBOX.Sent": false}},
		{"no NAMESPACE", nil, map[string]bool{"INBOX": false, "shared/alice/Team": false, "user.owner1.Team": false}},
	} {
		m := &IMAP{}
		if tc.ns != nil {
			m.setNamespaces(tc.ns)
		}
		for name, want := range tc.names {
			if got := m.sharedName(name); got != want {
				t.Errorf("%s: sharedName(%q) = %v, want %v", tc.server, name, got, want)
			}
		}
	}
}
