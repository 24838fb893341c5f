package imap

import (
	"context"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// Delete takes an OK to UID EXPUNGE as no proof: it asks which of the UIDs
// are still in the folder, and a server that kept some makes it fail (to
// be tried again; the engine then records nothing as deleted). Dovecot
// once kept 1,000 of 1,500 that way, with OK (TestDeletionsOfMoreThanOneBatch).
func TestDeleteChecksThatTheMessagesAreGone(t *testing.T) {
	for _, c := range []struct {
		name, search string // the answer to UID SEARCH
		wantErr      bool
	}{
		{"all gone", "* SEARCH\r\n", false},
		{"two kept", "* SEARCH 3 5\r\n", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var cmds []string
			m := dialScripted(t, "IMAP4rev1 UIDPLUS", func(tag, rest string) string {
				verb, _, _ := strings.Cut(rest, " ")
				if verb == "UID" {
					verb = rest[:strings.IndexByte(rest[4:], ' ')+4]
				}
				cmds = append(cmds, verb)
				switch {
				case strings.HasPrefix(rest, "SELECT"):
					return "* 5 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n" + tag + " OK [READ-WRITE] done\r\n"
				case strings.HasPrefix(rest, "UID SEARCH"):
					return c.search + tag + " OK done\r\n"
				}
				return ""
			})
			msgs := []formats.Message{{ID: "1", UID: 1}, {ID: "3", UID: 3}, {ID: "5", UID: 5}}
			err := m.Delete(context.Background(), formats.Folder{Name: "INBOX"}, msgs)
			if got := err != nil; got != c.wantErr {
				t.Fatalf("Delete: %v, want an error %v (commands %v)", err, c.wantErr, cmds)
			}
			if err != nil && (!migrate.IsRetryable(err) || !strings.Contains(err.Error(), "kept 2 of the 3")) {
				t.Errorf("Delete: %v, want a retryable error naming 2 of 3 kept", err)
			}
			if i, j := strings.Index(strings.Join(cmds, ","), "UID STORE"), strings.Index(strings.Join(cmds, ","), "UID EXPUNGE"); i < 0 || j < i {
				t.Errorf("commands %v: want UID STORE, then UID EXPUNGE", cmds)
			}
		})
	}
}
