package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2"
)

// Flags follow leaves out what the destination folder cannot keep.
func TestPermanentFlags(t *testing.T) {
	cases := []struct {
		perm []imap.Flag
		ok   map[string]bool
	}{
		{nil, map[string]bool{`\Seen`: true, "$Label1": true}},
		{[]imap.Flag{imap.FlagSeen, imap.FlagFlagged}, map[string]bool{`\seen`: true, `\Flagged`: true, `\Answered`: false, "$Label1": false}},
		{[]imap.Flag{imap.FlagSeen, imap.FlagWildcard}, map[string]bool{`\Seen`: true, `\Draft`: false, "$Label1": true, "NonJunk": true}},
	}
	for _, c := range cases {
		allowed := permanent(c.perm)
		for f, want := range c.ok {
			if got := allowed(f); got != want {
				t.Errorf("PERMANENTFLAGS %v: %s allowed %v, want %v", c.perm, f, got, want)
			}
		}
	}
}
