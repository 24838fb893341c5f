package migrate

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
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

// TestPlanLeavesSharedOut: Plan copies a shared folder only with
// SharedFolders, under its whole name; LeftOut counts what it left out
// (that --include selects); a shared \Sent on either side is nobody's
// mapping target.
func TestPlanLeavesSharedOut(t *testing.T) {
	src := []formats.Folder{
		{Path: []string{"INBOX"}, Name: "INBOX"},
		{Path: []string{"Sent"}, Name: "Sent", SpecialUse: `\Sent`},
		{Path: []string{"shared"}, Name: "shared", NoSelect: true, Shared: true},
		{Path: []string{"shared", "alice", "Sent"}, Name: "shared/alice/Sent", SpecialUse: `\Sent`, Shared: true},
		{Path: []string{"shared", "alice", "Team"}, Name: "shared/alice/Team", Shared: true},
	}
	dst := []formats.Folder{
		{Path: []string{"INBOX"}, Name: "INBOX"},
		{Path: []string{"shared", "carol", "Sent Items"}, Name: "shared/carol/Sent Items", SpecialUse: `\Sent`, Shared: true},
		{Path: []string{"Sent Items"}, Name: "Sent Items", SpecialUse: `\Sent`},
	}
	dests := func(opts PlanOptions) map[string]string {
		plan, err := Plan(src, dst, '/', opts)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, pf := range plan {
			out[formats.DisplayName(pf.Source.Path)] = formats.DisplayName(pf.Dest)
		}
		return out
	}
	got := dests(PlanOptions{})
	if len(got) != 2 || got["INBOX"] != "INBOX" || got["Sent"] != "Sent Items" {
		t.Errorf("default plan: %v", got)
	}
	if n := LeftOut(src, PlanOptions{}); n != 2 {
		t.Errorf("LeftOut = %d, want 2", n)
	}
	if n := LeftOut(src, PlanOptions{Include: []string{"shared/*/Team"}}); n != 1 {
		t.Errorf("LeftOut with --include shared/*/Team = %d, want 1", n)
	}
	if n := LeftOut(src, PlanOptions{SharedFolders: true}); n != 0 {
		t.Errorf("LeftOut with SharedFolders = %d, want 0", n)
	}
	got = dests(PlanOptions{SharedFolders: true})
	if len(got) != 4 || got["shared/alice/Sent"] != "shared/alice/Sent" || got["shared/alice/Team"] != "shared/alice/Team" || got["Sent"] != "Sent Items" {
		t.Errorf("plan with SharedFolders: %v", got)
	}
}
