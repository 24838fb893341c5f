package migrate

import (
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

func folders(sep rune, specs ...string) []formats.Folder {
	var out []formats.Folder
	for _, s := range specs {
		name, use, _ := strings.Cut(s, "|")
		f := formats.Folder{Name: name, Path: formats.SplitFolder(name, sep), SpecialUse: use}
		if use == "noselect" {
			f.SpecialUse, f.NoSelect = "", true
		}
		out = append(out, f)
	}
	return out
}

func planned(t *testing.T, p []PlannedFolder, sep rune) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, pf := range p {
		j, _ := formats.JoinFolder(pf.Dest, sep)
		m[formats.DisplayName(pf.Source.Path)] = j
	}
	return m
}

func TestPlan(t *testing.T) {
	src := folders('/', "INBOX", "inbox/Sub", `Sent|\Sent`, "Sent/2023", `Papierkorb|\Trash`, "Archive|noselect",
		"Archive/2023", "Lists/dev.team", "Entwürfe")
	dst := folders('.', "INBOX", `Sent Items|\Sent`, `Deleted Items|\Trash`, `Drafts|\Drafts`)
	tests := []struct {
		name string
		opts PlanOptions
		want map[string]string
	}{
		{"defaults", PlanOptions{}, map[string]string{
			"INBOX": "INBOX", "INBOX/Sub": "INBOX.Sub", "Sent": "Sent Items", "Sent/2023": "Sent Items.2023",
			"Papierkorb": "Deleted Items", "Archive/2023": "Archive.2023", "Lists/dev.team": "Lists.dev_team",
			"Entwürfe": "Entwürfe",
		}},
		{"include and exclude", PlanOptions{Include: []string{"Archive/*", "Sent*"}, Exclude: []string{"Sent/*"}},
			map[string]string{"Archive/2023": "Archive.2023", "Sent": "Sent Items"}},
		{"map and prefix", PlanOptions{Maps: []Mapping{{Old: []string{"Archive"}, New: []string{"Old", "Arch"}}}, Prefix: "Imported",
			Include: []string{"Archive/*", "INBOX"}},
			map[string]string{"INBOX": "Imported.INBOX", "Archive/2023": "Imported.Old.Arch.2023"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Plan(src, dst, '.', tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := planned(t, p, '.')
			if len(got) != len(tt.want) {
				t.Errorf("planned %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s -> %q, want %q", k, got[k], v)
				}
			}
		})
	}
	// INBOX first, then special-use folders.
	p, _ := Plan(src, dst, '.', PlanOptions{})
	if formats.DisplayName(p[0].Source.Path) != "INBOX" || p[1].Source.SpecialUse == "" {
		t.Errorf("order: %s, %s", formats.DisplayName(p[0].Source.Path), formats.DisplayName(p[1].Source.Path))
	}
	// A renamed component is noted.
	for _, pf := range p {
		if formats.DisplayName(pf.Source.Path) == "Lists/dev.team" && !strings.Contains(pf.Note, "Lists.dev_team") {
			t.Errorf("note for Lists/dev.team: %q", pf.Note)
		}
	}
}

func TestPlanWellKnownNamesWithoutSpecialUse(t *testing.T) {
	src := folders('/', "INBOX", "Sent Messages", "Junk")
	dst := folders('/', "INBOX", `Sent|\Sent`, `Spam|\Junk`)
	p, err := Plan(src, dst, '/', PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := planned(t, p, '/')
	if got["Sent Messages"] != "Sent" || got["Junk"] != "Spam" {
		t.Errorf("got %v", got)
	}
}

func TestPlanBadGlobAndMapping(t *testing.T) {
	if _, err := ParseMapping("noequals"); err == nil {
		t.Error("ParseMapping accepted a mapping without =")
	}
	m, err := ParseMapping("Old/Sub=New")
	if err != nil || strings.Join(m.Old, "|") != "Old|Sub" || strings.Join(m.New, "|") != "New" {
		t.Errorf("ParseMapping = %v, %v", m, err)
	}
}
