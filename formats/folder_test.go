package formats

import (
	"strings"
	"testing"
)

func TestSplitJoinFolder(t *testing.T) {
	tests := []struct {
		name    string
		sep     rune
		path    []string
		joinSep rune
		joined  string
		renamed bool
	}{
		{"inbox", '/', []string{"INBOX"}, '.', "INBOX", false},
		{"Inbox/Sub", '/', []string{"INBOX", "Sub"}, '.', "INBOX.Sub", false},
		{"Archive/2023", '/', []string{"Archive", "2023"}, '.', "Archive.2023", false},
		{"Lists/dev.team", '/', []string{"Lists", "dev.team"}, '.', "Lists.dev_team", true},
		{"a.b/c", '.', []string{"a", "b/c"}, '/', "a/b_c", true},
		{"Entwürfe.Über", '.', []string{"Entwürfe", "Über"}, '/', "Entwürfe/Über", false},
		{"flat", 0, []string{"flat"}, '/', "flat", false},
		// A server whose separator is "_" (found by FuzzFolderMapping).
		{"my_mail/x", '/', []string{"my_mail", "x"}, '_', "my-mail_x", true},
	}
	for _, tt := range tests {
		p := SplitFolder(tt.name, tt.sep)
		if strings.Join(p, "\x00") != strings.Join(tt.path, "\x00") {
			t.Errorf("SplitFolder(%q, %q) = %q, want %q", tt.name, tt.sep, p, tt.path)
		}
		j, r := JoinFolder(p, tt.joinSep)
		if j != tt.joined || r != tt.renamed {
			t.Errorf("JoinFolder(%q, %q) = %q, %v; want %q, %v", p, tt.joinSep, j, r, tt.joined, tt.renamed)
		}
	}
}

func TestCleanFlags(t *testing.T) {
	got := CleanFlags([]string{`\seen`, `\Recent`, `$Label1`, `\SEEN`, `\Flagged`, ""})
	want := []string{`\Seen`, `$Label1`, `\Flagged`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("CleanFlags = %q, want %q", got, want)
	}
}

// FuzzFolderMapping: split then join with the same separator gives the name
// back, and a joined name never holds more components than the path had.
func FuzzFolderMapping(f *testing.F) {
	f.Add("Archive/2023", "/", ".")
	f.Add("a.b/c", ".", "/")
	f.Add("inbox", "/", ".")
	f.Add("..", "/", ".")
	f.Add("_", "/", "_")
	f.Fuzz(func(t *testing.T, name, from, to string) {
		if from == "" || to == "" {
			return
		}
		fs, ts := []rune(from)[0], []rune(to)[0]
		if fs == 0 || ts == 0 {
			return // a flat namespace has one component by definition
		}
		p := SplitFolder(name, fs)
		j, _ := JoinFolder(p, fs)
		if !strings.EqualFold(j, name) && !strings.HasPrefix(strings.ToUpper(name), "INBOX") {
			t.Fatalf("split/join %q with %q gave %q", name, fs, j)
		}
		j2, _ := JoinFolder(p, ts)
		if got := len(SplitFolder(j2, ts)); got != len(p) {
			t.Fatalf("joined %q with %q into %q: %d components, want %d", p, ts, j2, got, len(p))
		}
	})
}
