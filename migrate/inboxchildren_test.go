package migrate

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// prefixNamer names folders as an IMAP server with a personal namespace
// prefix does.
type prefixNamer struct{ prefix, sep string }

func (n prefixNamer) FolderName(path []string) string {
	if formats.IsInbox(path) {
		return "INBOX"
	}
	return n.prefix + strings.Join(path, n.sep)
}

func TestInboxChildren(t *testing.T) {
	cyrus := prefixNamer{"INBOX.", "."}
	plain := prefixNamer{"", "/"}
	plan := func(paths ...string) []PlannedFolder {
		var out []PlannedFolder
		for _, p := range paths {
			path := strings.Split(p, "/")
			out = append(out, PlannedFolder{Source: formats.Folder{Path: path}, Dest: path})
		}
		return out
	}
	tests := []struct {
		name     string
		src, dst any
		plan     []PlannedFolder
		want     string
	}{
		{"into a prefixed server", plain, cyrus, plan("INBOX", "INBOX/Sub", "INBOX/Sub/Deep", "Work"),
			"INBOX=INBOX INBOX/Sub=INBOX.Sub INBOX/Sub/Deep=INBOX.Sub.Deep Work=INBOX.Work"},
		{"a top-level folder of the same name", plain, cyrus, plan("INBOX/Sub", "INBOX/Sub/Deep", "sub", "INBOX/Other"),
			"INBOX/Sub=INBOX.INBOX.Sub INBOX/Sub/Deep=INBOX.INBOX.Sub.Deep sub=INBOX.sub INBOX/Other=INBOX.Other"},
		{"a folder below one of the same name", plain, cyrus, plan("INBOX/Sub", "Sub/Deep"),
			"INBOX/Sub=INBOX.INBOX.Sub Sub/Deep=INBOX.Sub.Deep"},
		{"INBOX/INBOX stays", plain, cyrus, plan("INBOX/INBOX", "INBOX/INBOX/X"),
			"INBOX/INBOX=INBOX.INBOX.INBOX INBOX/INBOX/X=INBOX.INBOX.INBOX.X"},
		{"between two prefixed servers", cyrus, cyrus, plan("INBOX/Sub"), "INBOX/Sub=INBOX.INBOX.Sub"},
		{"into a plain server", cyrus, plain, plan("INBOX/Sub"), "INBOX/Sub=INBOX/Sub"},
		{"into an archive", nil, nil, plan("INBOX/Sub"), "INBOX/Sub=INBOX/Sub"},
	}
	for _, tt := range tests {
		out := inboxChildren(tt.plan, tt.src, tt.dst)
		var got []string
		for _, pf := range out {
			n := plain
			if tt.dst != nil {
				n = tt.dst.(prefixNamer)
			}
			got = append(got, strings.Join(pf.Source.Path, "/")+"="+n.FolderName(pf.Dest))
			kept := strings.HasPrefix(n.FolderName(pf.Dest), "INBOX.INBOX.") && tt.dst == cyrus && tt.src != cyrus &&
				!strings.HasPrefix(strings.Join(pf.Source.Path, "/"), "INBOX/INBOX")
			if kept != (pf.Note != "") {
				t.Errorf("%s: %v: note %q", tt.name, pf.Source.Path, pf.Note)
			}
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, g, tt.want)
		}
	}
}
