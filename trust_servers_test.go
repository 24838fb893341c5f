package main

// Issue 9, item 7 on the real servers that rewrite what they store: Cyrus
// (munge8bit: 8-bit header bytes become X) and Courier (a final CRLF
// added). A run killed with SIGKILL and resumed, and a rerun with a fresh
// state directory, add no copy.

import (
	"bytes"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/servertest"
)

func TestRewritingServersKillAndFreshStateAddNoCopy(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the kill test runs the binary several times")
	}
	for _, kind := range []servertest.Kind{servertest.Cyrus, servertest.Courier} {
		t.Run(string(kind), func(t *testing.T) {
			dst := servertest.Start(t, kind, servertest.Options{})
			src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
			var msgs []dovecottest.SeedMessage
			for _, m := range rewrittenByServers(25) { // 200 messages
				// Cyrus refuses a message without a header/body separator
				// ("NO Message contains invalid header"): that is a refusal,
				// tested elsewhere, not a rewrite.
				if kind == servertest.Cyrus && !bytes.Contains(m.Body, []byte("\r\n\r\n")) {
					continue
				}
				msgs = append(msgs, m)
			}
			src.Seed(t, "alice", msgs)
			setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
			setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users[dst.User])
			state := t.TempDir()
			args := []string{"migrate", dovecotURL(src), serverURL(dst), "--src-tls", "none", "--dst-tls", "none",
				"--state-dir", state, "--progress", "never"}
			bin := binary(t)
			kills := killRuns(t, bin, args, 2)
			final := mailferryCmd(t, bin, args...)
			if out, err := final.CombinedOutput(); err != nil {
				t.Fatalf("final run after %d kills: %v\n%s", kills, err, out)
			}
			inbox := dst.Name("INBOX")
			if got := len(dst.Bodies(t, dst.User, inbox)); got != len(msgs) {
				t.Fatalf("after %d kills and a final run %s holds %d messages, want %d", kills, kind, got, len(msgs))
			}
			// A fresh state directory: everything is found there by key.
			code, out, errOut, report := migrateBetween(t, dovecotURL(src), serverURL(dst), src.Users["alice"], dst.Users[dst.User], t.TempDir())
			if code != 0 {
				t.Fatalf("fresh-state rerun: exit %d\n%s\n%s", code, out, errOut)
			}
			if r := readReport(t, report); r.Totals.Copied != 0 {
				t.Errorf("fresh-state rerun copied %d into %s, want 0", r.Totals.Copied, kind)
			}
			if got := len(dst.Bodies(t, dst.User, inbox)); got != len(msgs) {
				t.Errorf("after the fresh-state rerun %s holds %d messages, want %d", kind, got, len(msgs))
			}
		})
	}
}

// Item 3 on real Cyrus: alice shares INBOX.Team with bob (every right);
// bob's LIST shows it as user.alice.Team. Moving bob's account with
// --delete-source must not copy it as bob's own, and must never delete
// from it, with or without --shared-folders.
func TestCyrusSharedFolderNeverDeleted(t *testing.T) {
	t.Parallel()
	cy := servertest.StartCyrus(t, servertest.Options{})
	alice := cy.Client(t, "alice")
	if err := alice.Create("INBOX.Team", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, m := range plainMessages(3, "team") {
		cmd := alice.Append("INBOX.Team", int64(len(m.Body)), nil)
		cmd.Write(m.Body)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := alice.SetACL("INBOX.Team", "bob", imap.RightModificationReplace, imap.RightSet("lrswipkxtecda")).Wait(); err != nil {
		t.Fatalf("SETACL: %v", err)
	}
	bob := cy.Client(t, "bob")
	for _, m := range plainMessages(2, "bobs") {
		cmd := bob.Append("INBOX", int64(len(m.Body)), nil)
		cmd.Write(m.Body)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	sums := func() []string {
		var out []string
		for _, b := range cy.Bodies(t, "alice", "INBOX.Team") {
			out = append(out, sha(b))
		}
		sort.Strings(out)
		return out
	}
	teamBefore := sums()
	list, err := bob.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, l := range list {
		seen = seen || l.Mailbox == "user.alice.Team"
	}
	if !seen {
		t.Fatalf("bob does not see alice's Team as user.alice.Team: %v", list)
	}
	for _, extra := range [][]string{nil, {"--shared-folders"}} {
		dst := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
		code, out, errOut, report := migrateBetween(t, "imap://bob@"+cy.IMAPAddr(), dovecotURL(dst), cy.Users["bob"], dst.Users["alice"], t.TempDir(),
			append([]string{"--delete-source"}, extra...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", extra, code, out, errOut)
		}
		if got := sums(); strings.Join(got, ",") != strings.Join(teamBefore, ",") {
			t.Fatalf("%v: alice's Team changed: %d messages before, %d after", extra, len(teamBefore), len(got))
		}
		copied := readReport(t, report).Totals.Copied
		want := 2 // bob's own two, deleted from the source by this run
		if extra != nil {
			want = 3 // alice's three, under their whole name
		}
		if copied != want {
			t.Errorf("%v: copied %d, want %d\n%s", extra, copied, want, out)
		}
		if left := len(cy.Bodies(t, "bob", "INBOX")); left != 0 {
			t.Errorf("%v: bob's INBOX still holds %d messages after --delete-source", extra, left)
		}
	}
}
