package dovecottest

import (
	"strings"
	"testing"
)

// TestSharing pins what a server with Options.Sharing answers (see
// sharing.go): NAMESPACE with all three kinds, a folder alice shares listed
// to bob under shared/alice/, the public folders under Public/, and both
// readable (and writable) by bob with the same bytes alice sees.
func TestSharing(t *testing.T) {
	s := Start(t, Options{Sharing: true, PublicFolders: []string{"Notices"}})
	s.Seed(t, "alice", []SeedMessage{
		{Folder: "Team", Body: crlfMessage("team one", 1)},
		{Folder: "Team", Body: crlfMessage("team two", 2)},
		{Folder: "Private", Body: crlfMessage("private", 3)},
	})
	s.Seed(t, "alice", []SeedMessage{{Folder: s.PublicPrefix() + "Notices", Body: crlfMessage("notice", 4)}})
	s.Share(t, "alice", "Team", "bob", "lrwstipekxa")

	c := s.Client(t, "bob")
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatalf("NAMESPACE: %v", err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || len(ns.Other) != 1 || ns.Other[0].Prefix != "shared/" ||
		len(ns.Shared) != 1 || ns.Shared[0].Prefix != "Public/" {
		t.Errorf("NAMESPACE: personal %+v other %+v shared %+v", ns.Personal, ns.Other, ns.Shared)
	}
	var names []string
	for _, f := range s.Folders(t, "bob") {
		names = append(names, f.Mailbox)
	}
	got := strings.Join(names, " ")
	for _, want := range []string{"INBOX", "shared/alice/Team", "Public/Notices"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("bob's LIST %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "Private") {
		t.Errorf("bob's LIST %q shows alice's unshared folder", got)
	}
	bob, alice := s.Snapshot(t, "bob"), s.Snapshot(t, "alice")
	if len(bob["shared/alice/Team"]) != 2 || len(bob["Public/Notices"]) != 1 {
		t.Fatalf("bob reads %d shared and %d public messages, want 2 and 1", len(bob["shared/alice/Team"]), len(bob["Public/Notices"]))
	}
	for i, m := range alice["Team"] {
		if bob["shared/alice/Team"][i].SHA256 != m.SHA256 {
			t.Errorf("message %d: bob reads other bytes than alice", i)
		}
	}
	if len(alice["Public/Notices"]) != 1 {
		t.Errorf("alice reads %d public messages, want 1", len(alice["Public/Notices"]))
	}
}
