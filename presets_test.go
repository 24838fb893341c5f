package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// presetFlags parses args into a fresh copyFlags and applies the options.
func presetFlags(t *testing.T, args ...string) (*copyFlags, string, error) {
	t.Helper()
	var f copyFlags
	cmd := &cobra.Command{Use: "x"}
	f.add(cmd)
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	env := &environment{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &errb, getenv: func(string) string { return "" }}
	_, err := f.options(env)
	return &f, errb.String(), err
}

func TestPresetDefaultsOnlyWhatTheUserDidNotSet(t *testing.T) {
	t.Parallel()
	f, say, err := presetFlags(t, "--preset", "office365")
	if err != nil {
		t.Fatal(err)
	}
	if f.jobs != 2 || f.maxMessageSize != 150<<20 || f.maxMessagesPerSec != 0 || f.dedup != "folder" {
		t.Errorf("office365: jobs %d, max-message-size %d, messages/s %g, dedup %s; want 2, 150 MiB, unset, folder",
			f.jobs, f.maxMessageSize, f.maxMessagesPerSec, f.dedup)
	}
	if !strings.Contains(say, "--jobs 2") || !strings.Contains(say, "--max-message-size 150MiB") {
		t.Errorf("the preset did not say what it set: %q", say)
	}

	f, say, err = presetFlags(t, "--preset", "office365", "--jobs", "8", "--max-message-size", "0")
	if err != nil {
		t.Fatal(err)
	}
	if f.jobs != 8 || f.maxMessageSize != 0 {
		t.Errorf("explicit flags lost to the preset: jobs %d, max-message-size %d", f.jobs, f.maxMessageSize)
	}
	if strings.Contains(say, "--jobs") {
		t.Errorf("the preset claims to set a flag the user gave: %q", say)
	}

	f, say, err = presetFlags(t, "--preset", "gmail")
	if err != nil {
		t.Fatal(err)
	}
	if f.dedup != "account" || f.jobs != 4 {
		t.Errorf("gmail: dedup %s jobs %d, want account and the default 4", f.dedup, f.jobs)
	}
	if !strings.Contains(say, "[Gmail]/Starred") {
		t.Errorf("gmail preset did not say what it leaves out: %q", say)
	}
	if f, _, _ = presetFlags(t, "--preset", "gmail", "--dedup", "folder"); f.dedup != "folder" {
		t.Errorf("--dedup folder lost to the gmail preset: %s", f.dedup)
	}

	if _, _, err := presetFlags(t, "--preset", "yahoo"); exitCode(err) != exitUsage {
		t.Errorf("unknown preset: %v (exit %d), want a usage error", err, exitCode(err))
	}
}

func TestRateFlagsTakeUnits(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"500000": 500000, "200KB": 200000, "2MB": 2000000, "2m": 2000000, "150MiB": 150 << 20,
		"1.5KiB": 1536, "36 MB": 36000000, "0": 0,
	} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "fast", "2XB", "-5", "1e30"} {
		if _, err := parseByteSize(bad); err == nil {
			t.Errorf("parseByteSize(%q) accepted", bad)
		}
	}
	f, _, err := presetFlags(t, "--max-bytes-per-second", "2MB", "--max-messages-per-second", "0.5")
	if err != nil || f.maxBytesPerSecond != 2000000 || f.maxMessagesPerSec != 0.5 {
		t.Errorf("rate flags: %d bytes/s, %g msg/s, %v", f.maxBytesPerSecond, f.maxMessagesPerSec, err)
	}
	if _, _, err := presetFlags(t, "--max-messages-per-second", "-1"); exitCode(err) != exitUsage {
		t.Errorf("a negative rate: %v, want a usage error", err)
	}
}

// listSource is a Source that only lists folders.
type listSource struct {
	migrate.Source
	folders []formats.Folder
}

func (s *listSource) Folders(context.Context) ([]formats.Folder, error) { return s.folders, nil }

type listDeleter struct{ listSource }

func (s *listDeleter) Delete(context.Context, formats.Folder, []formats.Message) error { return nil }

func TestPresetGmailFolders(t *testing.T) {
	t.Parallel()
	folder := func(name, use string) formats.Folder {
		return formats.Folder{Name: name, Path: strings.Split(name, "/"), SpecialUse: use}
	}
	src := &listSource{folders: []formats.Folder{
		folder("INBOX", ""), folder("Work", ""), folder("[Gmail]", ""),
		folder("[Gmail]/All Mail", `\All`), folder("[Gmail]/Sent Mail", `\Sent`),
		folder("[Gmail]/Drafts", ""), folder("[Gmail]/Spam", `\Junk`), folder("[Gmail]/Trash", ""),
		folder("[Gmail]/Starred", `\Flagged`), folder("[Gmail]/Important", ""),
		folder("[Google Mail]/Bin", ""), folder("[Gmail]/Markiert", `\Flagged`), // localised Starred
		folder("Drafts", ""), // not under [Gmail]/: left alone
	}}
	list := func(include ...string) map[string]string {
		f := &copyFlags{preset: "gmail", include: include}
		fs, err := f.presetSource()(src).Folders(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, f := range fs {
			out[f.Name] = f.SpecialUse
		}
		return out
	}
	got := list()
	want := map[string]string{
		"INBOX": "", "Work": "", "[Gmail]": "", "[Gmail]/All Mail": `\All`, "[Gmail]/Sent Mail": `\Sent`,
		"[Gmail]/Drafts": `\Drafts`, "[Gmail]/Spam": `\Junk`, "[Gmail]/Trash": `\Trash`,
		"[Google Mail]/Bin": `\Trash`, "Drafts": "",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("gmail folders:\n got %v\nwant %v", got, want)
	}
	// An --include that names a view brings it back; a pattern does not.
	if got := list("[Gmail]/Starred", "INBOX"); got["[Gmail]/Starred"] != `\Flagged` || len(got) != 11 {
		t.Errorf("--include [Gmail]/Starred: %v", got)
	}
	if got := list("*", "[Gmail]/*"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("--include '*' --include '[Gmail]/*' brought a view back: %v", got)
	}
	// Other presets and none leave the source alone; Delete stays.
	if s := (&copyFlags{}).presetSource()(src); s != migrate.Source(src) {
		t.Error("no preset wrapped the source")
	}
	if _, ok := migrate.As[migrate.Deleter]((&copyFlags{preset: "gmail"}).presetSource()(&listDeleter{})); !ok {
		t.Error("the gmail wrapper hid the source's Deleter")
	}
	if _, ok := migrate.As[migrate.Deleter]((&copyFlags{preset: "gmail"}).presetSource()(src)); ok {
		t.Error("the gmail wrapper made a Deleter of a source that is none")
	}
}

// gmailMessage is message n of the Gmail test account.
func gmailMessage(n int) []byte {
	return []byte(fmt.Sprintf("From: Ann Example <ann@example.com>\r\nTo: alice@example.com\r\n"+
		"Subject: message %d\r\nDate: Mon, 2 Jan 2023 10:%02d:00 +0000\r\nMessage-ID: <m%d@gmail.example>\r\n"+
		"\r\nThis is message %d.\r\n", n, n, n, n))
}

// gmailLayout is where each test message is filed, Gmail style: a message
// is in every folder of its labels and in All Mail (Spam and Trash apart).
var gmailLayout = map[int][]string{
	1: {"INBOX", "Work", "[Gmail]/All Mail", "[Gmail]/Starred", "[Gmail]/Important"},
	2: {"INBOX", "[Gmail]/All Mail", "[Gmail]/Important"},
	3: {"Work", "[Gmail]/All Mail"},
	4: {"[Gmail]/All Mail"}, // archived: no label at all
	5: {"[Gmail]/Sent Mail", "[Gmail]/All Mail"},
	6: {"[Gmail]/Drafts", "[Gmail]/All Mail"},
	7: {"[Gmail]/Spam"},
	8: {"[Gmail]/Trash"},
}

// startGmail starts a Dovecot laid out like Gmail and one like a company
// server ("Sent Items", Drafts, Junk, Trash, Archive, '.' separator).
func startGmail(t *testing.T) (src, dst *dovecottest.Server, names map[string]string) {
	src = dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUseFolders: map[string]string{
		"[Gmail]/All Mail": `\All`, "[Gmail]/Sent Mail": `\Sent`, "[Gmail]/Spam": `\Junk`, "[Gmail]/Starred": `\Flagged`,
		// Drafts, Trash and Important without an attribute: the preset knows them by name.
	}})
	dst = dovecottest.Start(t, dovecottest.Options{Separator: '.', SpecialUse: true, SentName: "Sent Items"})
	names = map[string]string{}
	var seed []dovecottest.SeedMessage
	for n := 1; n <= len(gmailLayout); n++ {
		body := gmailMessage(n)
		sum := sha256.Sum256(body)
		names[hex.EncodeToString(sum[:])] = fmt.Sprintf("m%d", n)
		for _, folder := range gmailLayout[n] {
			seed = append(seed, dovecottest.SeedMessage{Folder: folder, Body: body, Date: time.Date(2023, 1, 2, 10, n, 0, 0, time.UTC)})
		}
	}
	src.Seed(t, "alice", seed)
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	return src, dst, names
}

// contents names the messages of every non-empty folder: "INBOX: m1 m2".
func contents(t *testing.T, snap dovecottest.Snapshot, names map[string]string) []string {
	t.Helper()
	var out []string
	for folder, msgs := range snap {
		if len(msgs) == 0 {
			continue
		}
		var ms []string
		for _, m := range msgs {
			name, ok := names[m.SHA256]
			if !ok {
				name = "unknown-" + m.SHA256[:8]
			}
			ms = append(ms, name)
		}
		sort.Strings(ms)
		out = append(out, folder+": "+strings.Join(ms, " "))
	}
	sort.Strings(out)
	return out
}

func TestPresetGmailLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{
			// The preset's own choice: each message once, in the first
			// folder met (INBOX, special use, labels, All Mail last).
			name: "preset default: dedup account",
			want: []string{
				"Drafts: m6", "INBOX: m1 m2", "Junk: m7", "Sent Items: m5", "Trash: m8", "Work: m3",
				"[Gmail].All Mail: m4",
			},
		},
		{
			// A copy per label folder; All Mail holds every one of them again.
			name:  "dedup folder",
			extra: []string{"--dedup", "folder"},
			want: []string{
				"Drafts: m6", "INBOX: m1 m2", "Junk: m7", "Sent Items: m5", "Trash: m8", "Work: m1 m3",
				"[Gmail].All Mail: m1 m2 m3 m4 m5 m6",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, dst, names := startGmail(t)
			report := filepath.Join(t.TempDir(), "report.json")
			args := append([]string{"migrate", "imap://alice@" + src.IMAPAddr(), "imap://alice@" + dst.IMAPAddr(),
				"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never",
				"--preset", "gmail", "--report", report}, tc.extra...)
			code, out, errOut := mailferry(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			got := contents(t, dst.Snapshot(t, "alice"), names)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("destination:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			rep := readReport(t, report)
			dests := map[string]string{}
			for _, f := range rep.Folders {
				dests[f.Source] = f.Destination
			}
			for from, to := range map[string]string{
				"[Gmail]/Sent Mail": "Sent Items", "[Gmail]/Drafts": "Drafts", "[Gmail]/Spam": "Junk",
				"[Gmail]/Trash": "Trash", "[Gmail]/All Mail": "[Gmail].All Mail",
			} {
				if dests[from] != to {
					t.Errorf("%s went to %q, want %q", from, dests[from], to)
				}
			}
			for _, view := range []string{"[Gmail]/Starred", "[Gmail]/Important"} {
				if _, ok := dests[view]; ok {
					t.Errorf("%s was copied; the preset leaves it out", view)
				}
			}
			if rep.Folders[len(rep.Folders)-1].Source != "[Gmail]/All Mail" {
				t.Errorf("All Mail was not handled last: %v", rep.Folders)
			}
			if !strings.Contains(errOut, "--preset gmail") {
				t.Errorf("the preset did not say what it does:\n%s", errOut)
			}

			// A rerun copies nothing.
			code, out, errOut = mailferry(t, args...)
			if r := readReport(t, report); code != 0 || r.Totals.Copied != 0 {
				t.Errorf("rerun: exit %d, copied %d\n%s\n%s", code, r.Totals.Copied, out, errOut)
			}
			if again := contents(t, dst.Snapshot(t, "alice"), names); strings.Join(again, "\n") != strings.Join(got, "\n") {
				t.Errorf("the rerun changed the destination:\n%s", strings.Join(again, "\n"))
			}
		})
	}
}

func TestPresetOffice365RefusesOversizedBeforeSending(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	big := append(gmailMessage(2)[:0:0], gmailMessage(2)...)
	big = append(big, bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n"), 400)...) // ~26 KB
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{
		{Body: gmailMessage(1)}, {Body: big}, {Body: gmailMessage(3)},
	})
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, p.args("--preset", "office365", "--max-message-size", "10KB", "--report", report)...)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != 2 || rep.Totals.Failed != 1 || len(rep.Failures) != 1 {
		t.Fatalf("copied %d failed %d, want 2 and 1: %+v", rep.Totals.Copied, rep.Totals.Failed, rep.Failures)
	}
	if f := rep.Failures[0]; f.MessageID != "<m2@gmail.example>" || !strings.Contains(f.Error, "--max-message-size") {
		t.Errorf("failure %+v: want the big message named, with the limit", f)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 2 {
		t.Errorf("destination INBOX holds %d messages, want 2", n)
	}
	if !strings.Contains(errOut, "--jobs 2") {
		t.Errorf("the preset did not say it set --jobs 2:\n%s", errOut)
	}
	// With the limit raised the rerun copies the last one, and nothing twice.
	code, out, errOut = mailferry(t, p.args("--preset", "office365", "--report", report)...)
	if r := readReport(t, report); code != 0 || r.Totals.Copied != 1 {
		t.Errorf("rerun with the preset's 150 MiB: exit %d, copied %d\n%s\n%s", code, r.Totals.Copied, out, errOut)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 3 {
		t.Errorf("destination INBOX holds %d messages, want 3", n)
	}
}

// The rate flags pace a real migration. Only a lower bound is checked (a
// limit can make a run slower than the arithmetic, never faster), so the
// test cannot flake on a slow machine; the exact pacing is measured with a
// fake clock in migrate/ratelimit_test.go.
func TestRateLimitFlagsPaceARealMigration(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	var seed []dovecottest.SeedMessage
	for n := 1; n <= 11; n++ {
		seed = append(seed, dovecottest.SeedMessage{Body: gmailMessage(n)})
	}
	p.src.Seed(t, "alice", seed)
	report := filepath.Join(t.TempDir(), "report.json")
	begin := time.Now()
	code, out, errOut := mailferry(t, p.args("--max-messages-per-second", "20", "--max-bytes-per-second", "1MB", "--report", report)...)
	elapsed := time.Since(begin)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.Copied != 11 {
		t.Errorf("copied %d of 11", r.Totals.Copied)
	}
	// 11 messages at 20 per second: the first at once, then 10 × 50 ms.
	if elapsed < 500*time.Millisecond {
		t.Errorf("11 messages at 20/s took %v, want at least 500ms", elapsed)
	}
}
