package main

// Other users' folders (issue 9, item 3). On a server with shared folders
// LIST shows bob alice's folder as shared/alice/Team and a public folder as
// Public/Notices. Before, mailferry copied them as bob's own and
// --delete-source emptied them: alice's mail was gone. Now only bob's
// personal namespace is copied unless --shared-folders, and a shared folder
// is never deleted from.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

func sharedTestMessage(who, folder string, n int) []byte {
	return []byte(fmt.Sprintf("From: %s <%s@example.org>\r\nTo: team@example.org\r\n"+
		"Subject: %s %s %d\r\nMessage-ID: <%s.%s.%d@example.org>\r\nDate: Tue, 02 Jan 2024 10:%02d:00 +0000\r\n\r\n"+
		"%s's message %d in %s.\r\n", who, who, who, folder, n, who, strings.ReplaceAll(folder, "/", "-"), n, n, who, n, folder))
}

// sharedServer is a source where bob has folders of his own, alice shares
// Team with bob (every right, so that a client could expunge) and keeps
// Private to herself, and Public/Notices is open to all.
func sharedServer(t *testing.T) (*dovecottest.Server, dovecottest.Snapshot) {
	t.Helper()
	src := dovecottest.Start(t, dovecottest.Options{Sharing: true, PublicFolders: []string{"Notices"}})
	var bobs, alices []dovecottest.SeedMessage
	for i := 1; i <= 4; i++ {
		bobs = append(bobs, dovecottest.SeedMessage{Folder: "INBOX", Body: sharedTestMessage("bob", "INBOX", i)})
		alices = append(alices, dovecottest.SeedMessage{Folder: "Team", Body: sharedTestMessage("alice", "Team", i)})
	}
	bobs = append(bobs, dovecottest.SeedMessage{Folder: "Work", Body: sharedTestMessage("bob", "Work", 1)})
	alices = append(alices,
		dovecottest.SeedMessage{Folder: "Private", Body: sharedTestMessage("alice", "Private", 1)},
		dovecottest.SeedMessage{Folder: src.PublicPrefix() + "Notices", Body: sharedTestMessage("alice", "Notices", 1)},
		dovecottest.SeedMessage{Folder: src.PublicPrefix() + "Notices", Body: sharedTestMessage("alice", "Notices", 2)})
	src.Seed(t, "bob", bobs)
	src.Seed(t, "alice", alices)
	src.Share(t, "alice", "Team", "bob", "lrwstipekxa")
	before := src.Snapshot(t, "alice")
	if len(before["Team"]) != 4 || len(before["Public/Notices"]) != 2 {
		t.Fatalf("seeding: alice has %d in Team, %d in Public/Notices", len(before["Team"]), len(before["Public/Notices"]))
	}
	return src, before
}

// sameHashes checks that alice's mail, read as alice, is what it was: every
// folder with the same SHA-256 of every message.
func sameHashes(t *testing.T, before, after dovecottest.Snapshot) {
	t.Helper()
	for name, msgs := range before {
		var want, got []string
		for _, m := range msgs {
			want = append(want, m.SHA256)
		}
		for _, m := range after[name] {
			got = append(got, m.SHA256)
		}
		if strings.Join(want, " ") != strings.Join(got, " ") {
			t.Errorf("alice's %q: %d messages before, %d after (hashes differ)", name, len(want), len(got))
		}
	}
}

func TestSharedFoldersNotCopiedNorDeleted(t *testing.T) {
	t.Parallel()
	src, aliceBefore := sharedServer(t)
	dst := dovecottest.Start(t, dovecottest.Options{})
	bobBefore := src.Snapshot(t, "bob")
	if len(bobBefore["shared/alice/Team"]) != 4 {
		t.Fatalf("bob does not see alice's Team: %v", bobBefore)
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["bob"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["bob"])
	migrateBob := func(extra ...string) (int, string, string) {
		args := append([]string{"migrate", "imap://bob@" + src.IMAPAddr(), "imap://bob@" + dst.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never"}, extra...)
		return mailferry(t, args...)
	}

	// A dry run says what would be deleted: bob's 5, none of alice's.
	report := filepath.Join(t.TempDir(), "dry.json")
	if code, out, errOut := migrateBob("--delete-source", "--shared-folders", "--dry-run", "--report", report); code != 0 {
		t.Fatalf("--dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, f := range readReport(t, report).Folders {
		want := map[string]int{"INBOX": 4, "Work": 1}[f.Source]
		if f.DeletedAtSource != want {
			t.Errorf("--dry-run: %q would lose %d messages at the source, want %d", f.Source, f.DeletedAtSource, want)
		}
	}

	// Without the flag: bob's own folders are copied and deleted, alice's
	// and the public folder are neither, and the run says so once.
	report = filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := migrateBob("--delete-source", "--report", report)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	sameHashes(t, aliceBefore, src.Snapshot(t, "alice"))
	got := dst.Snapshot(t, "bob")
	for name, msgs := range got {
		if len(msgs) > 0 && name != "INBOX" && name != "Work" {
			t.Errorf("the destination got %d messages in %q, not bob's own folder", len(msgs), name)
		}
	}
	if len(keys(got["INBOX"])) != 4 || len(got["Work"]) != 1 {
		t.Errorf("bob's own folders: INBOX %d of 4, Work %d of 1 at the destination", len(got["INBOX"]), len(got["Work"]))
		explainShort(t, report, out, errOut, src, dst, got)
	}
	bobAfter := src.Snapshot(t, "bob")
	if len(bobAfter["INBOX"]) != 0 || len(bobAfter["Work"]) != 0 {
		t.Errorf("--delete-source left INBOX %d, Work %d at the source", len(bobAfter["INBOX"]), len(bobAfter["Work"]))
	}
	warn := out + errOut
	if n := strings.Count(warn, "--shared-folders"); n != 1 || !strings.Contains(warn, "2 folders") {
		t.Errorf("want one warning naming 2 folders left out and --shared-folders, got %d mentions:\n%s", n, warn)
	}

	// With the flag: they are copied, under their namespace prefix, and
	// still not deleted from.
	report = filepath.Join(t.TempDir(), "shared.json")
	code, out, errOut = migrateBob("--delete-source", "--shared-folders", "--report", report)
	if code != 0 {
		t.Fatalf("--shared-folders: exit %d\n%s\n%s", code, out, errOut)
	}
	sameHashes(t, aliceBefore, src.Snapshot(t, "alice"))
	got = dst.Snapshot(t, "bob")
	short := false
	for name, want := range map[string]string{"shared/alice/Team": "Team", "Public/Notices": "Public/Notices"} {
		if a, b := keys(got[name]), keys(aliceBefore[want]); strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("--shared-folders: destination %q has %d messages, alice's %q %d: %s", name, len(a), want, len(b), firstDiff(b, a))
			short = true
		}
	}
	if short {
		explainShort(t, report, out, errOut, src, dst, got)
	}
	if len(got["INBOX"]) != 4 || len(got["Work"]) != 1 {
		t.Errorf("--shared-folders: bob's own folders changed at the destination: INBOX %d, Work %d", len(got["INBOX"]), len(got["Work"]))
	}
}

// explainShort logs, for a destination that came up short, what each side
// held, what the run said and what the servers logged: enough to tell a
// listing from a store.
func explainShort(t *testing.T, report, out, errOut string, src, dst *dovecottest.Server, got dovecottest.Snapshot) {
	t.Helper()
	for _, f := range readReport(t, report).Folders {
		t.Logf("report: %q -> %q: found %d, copied %d, skipped %d, failed %d, note %q",
			f.Source, f.Destination, f.Found, f.Copied, f.Skipped, f.Failed, f.Note)
	}
	for name, msgs := range src.Snapshot(t, "bob") {
		t.Logf("source as bob now: %q: %d messages", name, len(msgs))
	}
	for name, msgs := range got {
		t.Logf("destination: %q: %d messages", name, len(msgs))
	}
	c := dst.Client(t, "bob")
	for _, f := range readReport(t, report).Folders {
		if _, listed := got[f.Destination]; listed {
			continue
		}
		sd, err := c.Select(f.Destination, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Logf("destination: %q not listed; SELECT: %v", f.Destination, err)
		} else {
			t.Logf("destination: %q not listed; SELECT finds %d messages", f.Destination, sd.NumMessages)
		}
	}
	t.Logf("mailferry:\n%s\n%s\nsource log:\n%s\ndestination log:\n%s", out, errOut, src.LogTail(40), dst.LogTail(60))
}

// TestFoldersMarksShared: the folders command shows what migrate copies:
// without --shared-folders only the personal folders, and a note on stderr
// saying how many others there are; with it those too, marked "shared" in
// the NAMESPACE column.
func TestFoldersMarksShared(t *testing.T) {
	t.Parallel()
	src, _ := sharedServer(t)
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["bob"])
	for _, withFlag := range []bool{false, true} {
		args := []string{"folders", "imap://bob@" + src.IMAPAddr(), "--src-tls", "none"}
		if withFlag {
			args = append(args, "--shared-folders")
		}
		code, out, errOut := mailferry(t, args...)
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		lines := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				lines[f[0]] = l
			}
		}
		for name, want := range map[string]string{"INBOX": "personal", "Work": "personal", "shared/alice/Team": "shared", "Public/Notices": "shared"} {
			if want == "shared" && !withFlag {
				if _, ok := lines[name]; ok {
					t.Errorf("without --shared-folders, %q is listed:\n%s", name, out)
				}
				continue
			}
			f := strings.Fields(lines[name])
			if len(f) == 0 || f[len(f)-1] != want {
				t.Errorf("--shared-folders=%v: folder %q: line %q, want its NAMESPACE column %q:\n%s", withFlag, name, lines[name], want, out)
			}
		}
		if note := strings.Contains(errOut, "2 folders") && strings.Contains(errOut, "--shared-folders"); note == withFlag {
			t.Errorf("--shared-folders=%v: stderr %q", withFlag, errOut)
		}
	}
}

// TestSharedFoldersNeverWrittenIntoOthersAtDestination: with
// --shared-folders, bob's copy of shared/alice/Team would be created as
// shared/alice/Team at a destination that has the same namespaces: that is
// alice's folder there. mailferry refuses (usage error naming --map and
// --prefix) and alice's mail at the destination stays as it was; with
// --map the folders go to bob's own namespace.
func TestSharedFoldersNeverWrittenIntoOthersAtDestination(t *testing.T) {
	t.Parallel()
	src, _ := sharedServer(t)
	dst := dovecottest.Start(t, dovecottest.Options{Sharing: true})
	dst.Seed(t, "alice", []dovecottest.SeedMessage{{Folder: "Team", Body: sharedTestMessage("alice", "dst Team", 1)}})
	dst.Share(t, "alice", "Team", "bob", "lrwstipekxa")
	dstAlice := dst.Snapshot(t, "alice")
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["bob"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["bob"])
	args := func(extra ...string) []string {
		return append([]string{"migrate", "imap://bob@" + src.IMAPAddr(), "imap://bob@" + dst.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never", "--jobs", "1",
			"--shared-folders"}, extra...)
	}
	// (Public/ left out here: Dovecot itself refuses CREATE there, which
	// would stop the run before it reached shared/alice/Team.)
	code, out, errOut := mailferry(t, args("--exclude", "Public/*")...)
	if code != 2 || !strings.Contains(errOut, "--map") {
		t.Errorf("exit %d, want 2 and a line naming --map\n%s\n%s", code, out, errOut)
	}
	sameHashes(t, dstAlice, dst.Snapshot(t, "alice"))
	if n := total(dst.Snapshot(t, "alice")); n != 1 {
		t.Errorf("alice has %d messages at the destination, want her 1", n)
	}

	code, out, errOut = mailferry(t, args("--map", "shared=From others", "--map", "Public=From public")...)
	if code != 0 {
		t.Fatalf("with --map: exit %d\n%s\n%s", code, out, errOut)
	}
	sameHashes(t, dstAlice, dst.Snapshot(t, "alice"))
	got := dst.Snapshot(t, "bob")
	if len(got["From others/alice/Team"]) != 4 || len(got["From public/Notices"]) != 2 {
		t.Errorf("with --map: From others/alice/Team %d of 4, From public/Notices %d of 2", len(got["From others/alice/Team"]), len(got["From public/Notices"]))
	}
}

// TestArchiveSharedFolders: archive --delete-source takes bob's own mail
// and leaves alice's alone; with --shared-folders the archive holds alice's
// Team too (under shared/alice/Team), verify passes, and alice still has
// every message.
func TestArchiveSharedFolders(t *testing.T) {
	t.Parallel()
	src, aliceBefore := sharedServer(t)
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["bob"])
	dir := filepath.Join(t.TempDir(), "archive")
	archive := func(extra ...string) migrate.Report {
		t.Helper()
		report := filepath.Join(t.TempDir(), "r.json")
		args := append([]string{"archive", "imap://bob@" + src.IMAPAddr(), dir, "--src-tls", "none",
			"--state-dir", t.TempDir(), "--progress", "never", "--delete-source", "--report", report}, extra...)
		if code, out, errOut := mailferry(t, args...); code != 0 {
			t.Fatalf("archive %v: exit %d\n%s\n%s", extra, code, out, errOut)
		}
		return readReport(t, report)
	}
	rep := archive()
	if rep.Totals.Copied != 5 {
		t.Errorf("archive copied %d, want bob's 5", rep.Totals.Copied)
	}
	sameHashes(t, aliceBefore, src.Snapshot(t, "alice"))
	rep = archive("--shared-folders")
	if rep.Totals.Copied != 6 {
		t.Errorf("archive --shared-folders copied %d, want alice's Team 4 and Public/Notices 2", rep.Totals.Copied)
	}
	sameHashes(t, aliceBefore, src.Snapshot(t, "alice"))
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, out, errOut)
	}
	dest := reportDest(rep)
	if d := dest["shared/alice/Team"]; !strings.Contains(d, "shared") || !strings.Contains(d, "alice") {
		t.Errorf("shared/alice/Team archived as %q", d)
	}
}
