package main

// A server whose personal namespace has a prefix (INBOX. as Courier and
// Cyrus have): its folders are the user's folders without the prefix, and
// folders created there go under it. Tested with three Dovecots: a plain
// '/' source, a '.' server with prefix "INBOX.", and a plain '/' server the
// mail goes back to.

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// sameMapped checks that every folder of src with messages is at
// dst[name(folder)] with the same messages (hash, flags, date; as a
// multiset, so a duplicate shows), and that dst holds nothing else.
func sameMapped(t *testing.T, src, dst dovecottest.Snapshot, name func(string) string) {
	t.Helper()
	seen := map[string]bool{}
	for sname, msgs := range src {
		if len(msgs) == 0 {
			continue
		}
		dname := name(sname)
		seen[dname] = true
		if got, want := keys(dst[dname]), keys(msgs); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("folder %q -> %q: destination has %d messages, source %d; first difference: %s",
				sname, dname, len(got), len(want), firstDiff(want, got))
		}
	}
	for dname, msgs := range dst {
		if !seen[dname] && len(msgs) > 0 {
			t.Errorf("destination folder %q holds %d messages no source folder maps to", dname, len(msgs))
		}
	}
}

func reportDest(rep migrate.Report) map[string]string {
	m := map[string]string{}
	for _, f := range rep.Folders {
		m[f.Source] = f.Destination
	}
	return m
}

func TestNamespacePrefixBothWays(t *testing.T) {
	t.Parallel()
	plain := dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUse: true})
	prefixed := dovecottest.Start(t, dovecottest.Options{Separator: '.', NamespacePrefix: "INBOX.", SpecialUse: true})
	back := dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUse: true})
	// DefaultUsers: alice has the same password on all three.
	setenv(t, "MAILFERRY_SRC_PASSWORD", plain.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", plain.Users["alice"])

	msgs := testMessages(t, 0)
	plain.Seed(t, "alice", msgs)
	orig := plain.Snapshot(t, "alice")

	migrateOnce := func(from, to *dovecottest.Server, state string) migrate.Report {
		t.Helper()
		report := filepath.Join(t.TempDir(), "report.json")
		code, out, errOut := mailferry(t, "migrate", "imap://alice@"+from.IMAPAddr(), "imap://alice@"+to.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", state, "--progress", "never", "--report", report)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		return readReport(t, report)
	}

	// Plain -> prefixed: every folder arrives under INBOX., named with '.'.
	state1 := t.TempDir()
	rep := migrateOnce(plain, prefixed, state1)
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 {
		t.Errorf("copied %d of %d, failed %d", rep.Totals.Copied, len(msgs), rep.Totals.Failed)
	}
	dest := reportDest(rep)
	for src, want := range map[string]string{
		"INBOX":           "INBOX",
		"Sent":            "INBOX.Sent",
		"Archive/2023":    "INBOX.Archive.2023",
		"Archive/2024/Q1": "INBOX.Archive.2024.Q1",
		"Entwürfe/Über":   "INBOX.Entwürfe.Über",
		"Lists/dev.team":  "INBOX.Lists.dev_team", // '.' is the separator there
		"INBOX/Sub":       "INBOX.Sub",            // a child of INBOX (no top-level "Sub" here: README, Folders under INBOX)
	} {
		if _, seeded := orig[src]; !seeded {
			continue
		}
		if dest[src] != want {
			t.Errorf("%q went to %q, want %q", src, dest[src], want)
		}
	}
	toPrefixed := func(name string) string {
		if name == "INBOX" {
			return "INBOX"
		}
		name = strings.TrimPrefix(name, "INBOX/")
		return "INBOX." + strings.ReplaceAll(strings.ReplaceAll(name, ".", "_"), "/", ".")
	}
	mid := prefixed.Snapshot(t, "alice")
	sameMapped(t, orig, mid, toPrefixed)
	for _, f := range prefixed.Folders(t, "alice") {
		if f.Mailbox != "INBOX" && !strings.HasPrefix(f.Mailbox, "INBOX.") {
			t.Errorf("folder %q outside the personal namespace", f.Mailbox)
		}
	}
	if r := migrateOnce(plain, prefixed, state1); r.Totals.Copied != 0 {
		t.Errorf("the rerun into the prefixed server copied %d", r.Totals.Copied)
	}

	// Prefixed -> plain: the prefix is gone again.
	state2 := t.TempDir()
	rep = migrateOnce(prefixed, back, state2)
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 {
		t.Errorf("back: copied %d of %d, failed %d", rep.Totals.Copied, len(msgs), rep.Totals.Failed)
	}
	dest = reportDest(rep)
	for src, want := range map[string]string{
		"INBOX": "INBOX", "Sent": "Sent", "Archive/2023": "Archive/2023", "Archive/2024/Q1": "Archive/2024/Q1",
		"Entwürfe/Über": "Entwürfe/Über", "Lists/dev_team": "Lists/dev_team", "Sub": "Sub",
	} {
		if dest[src] != want {
			t.Errorf("back: %q went to %q, want %q (report: %v)", src, dest[src], want, dest)
		}
	}
	final := back.Snapshot(t, "alice")
	// INBOX/Sub comes back as Sub: on the prefixed server it was INBOX.Sub,
	// which is also what a top-level Sub is there.
	sameMapped(t, orig, final, func(name string) string {
		return strings.TrimPrefix(strings.ReplaceAll(name, "dev.team", "dev_team"), "INBOX/")
	})
	sameMapped(t, mid, final, func(name string) string {
		if name == "INBOX" {
			return name
		}
		return strings.ReplaceAll(strings.TrimPrefix(name, "INBOX."), ".", "/")
	})
	if r := migrateOnce(prefixed, back, state2); r.Totals.Copied != 0 {
		t.Errorf("the rerun back copied %d", r.Totals.Copied)
	}
	if total(final) != len(msgs) {
		t.Errorf("the round trip ends with %d messages, want %d", total(final), len(msgs))
	}
}
