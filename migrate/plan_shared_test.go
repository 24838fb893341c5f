package migrate

import (
	"testing"

	"github.com/mailferry/mailferry/formats"
)

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
