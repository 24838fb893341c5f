package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// A message the destination refuses (too big) is named in the report, the
// rest is copied, and the exit status is 3; a rerun copies nothing more.
func TestRefusedMessageExit3(t *testing.T) {
	t.Parallel()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.', MaxMailSize: 64 << 10})
	p := &pair{src: src, dst: dst, state: t.TempDir()}
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	var seed []dovecottest.SeedMessage
	for i := 0; i < 30; i++ {
		size := 200
		switch i {
		case 7:
			size = 200 << 10 // over the destination's limit, in a MULTIAPPEND batch
		case 21:
			size = 700 << 10 // over it too, streamed as an APPEND of its own
		}
		body := fmt.Sprintf("Message-ID: <m%d@refusal>\r\nSubject: %d\r\n\r\n%s\r\n", i, i, strings.Repeat("x", size))
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(body), Date: time.Unix(1700000000+int64(i), 0)})
	}
	src.Seed(t, "alice", seed)
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, p.args("--report", report)...)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != 28 || rep.Totals.Failed != 2 || len(rep.Failures) != 2 {
		t.Fatalf("copied %d, failed %d, failures %d; want 28, 2, 2", rep.Totals.Copied, rep.Totals.Failed, len(rep.Failures))
	}
	named := map[string]bool{}
	for _, f := range rep.Failures {
		named[f.MessageID] = true
		if f.Folder != "INBOX" || f.UID == 0 || f.Error == "" {
			t.Errorf("failure not named well: %+v", f)
		}
	}
	if !named["<m7@refusal>"] || !named["<m21@refusal>"] {
		t.Errorf("failures name %v, want <m7@refusal> and <m21@refusal>", named)
	}
	if n := len(dst.Snapshot(t, "alice")["INBOX"]); n != 28 {
		t.Errorf("destination holds %d, want 28", n)
	}
	// A rerun tries the two again, fails them again, copies nothing else.
	code, _, _ = mailferry(t, p.args("--report", report)...)
	if rep := readReport(t, report); code != 3 || rep.Totals.Copied != 0 || rep.Totals.Failed != 2 {
		t.Errorf("rerun: exit %d copied %d failed %d; want 3, 0, 2", code, rep.Totals.Copied, rep.Totals.Failed)
	}
}

// A full quota stops the run with one clear line and exit 1, and what is
// at the destination is there once. (A MULTIAPPEND batch is all or
// nothing, so the stop may come before any message of the batch landed.)
func TestFullQuotaStopsCleanly(t *testing.T) {
	t.Parallel()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '/', QuotaBytes: 40 << 10})
	p := &pair{src: src, dst: dst, state: t.TempDir()}
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	var seed []dovecottest.SeedMessage
	for i := 0; i < 40; i++ {
		body := fmt.Sprintf("Message-ID: <q%d@quota>\r\nSubject: %d\r\n\r\n%s\r\n", i, i, strings.Repeat("y", 2000))
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(body), Date: time.Unix(1700000000+int64(i), 0)})
	}
	src.Seed(t, "alice", seed)
	code, out, errOut := mailferry(t, p.args()...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(strings.ToLower(last), "quota") {
		t.Errorf("want a line naming the quota, got:\n%s", errOut)
	}
	got := dst.Snapshot(t, "alice")["INBOX"]
	if len(got) >= 40 {
		t.Fatalf("destination holds %d messages after the quota stop", len(got))
	}
	// Every message at the destination is one of the source's, once.
	seen := map[string]int{}
	for _, m := range got {
		seen[m.SHA256]++
	}
	for h, n := range seen {
		if n != 1 {
			t.Errorf("message %s is there %d times", h, n)
		}
	}
	t.Logf("stopped with %d of 40 messages at the destination: %s", len(got), last)
}

// A refused message is not recorded, so when the folder's pass then loses
// its connection, the next pass tries it again: the report names it once
// (the last pass's verdict), not once per pass, and exits 3.
func TestRefusedMessageThenCutNamedOnce(t *testing.T) {
	t.Parallel()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/'})
	dst := dovecottest.Start(t, dovecottest.Options{Separator: '.', MaxMailSize: 64 << 10})
	const n = 1200 // the state is written every 1000 messages: the refusal is met before the cut
	var seed []dovecottest.SeedMessage
	for i := 0; i < n; i++ {
		size := 100
		if i == 7 {
			size = 200 << 10 // over the destination's limit
		}
		body := fmt.Sprintf("Message-ID: <m%d@refusal>\r\nSubject: %d\r\n\r\n%s\r\n", i, i, strings.Repeat("x", size))
		seed = append(seed, dovecottest.SeedMessage{Folder: "INBOX", Body: []byte(body), Date: time.Unix(1700000000+int64(i), 0)})
	}
	src.Seed(t, "alice", seed)
	// The body of message 1100 is sent only by the copy's FETCH.
	proxy, err := faultproxy.New(src.IMAPAddr(), faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Before: []byte("Subject: 1100\r\n"), Dir: faultproxy.ServerToClient, P: 1, MaxCuts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	setenv(t, "MAILFERRY_SRC_PASSWORD", src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", dst.Users["alice"])
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, "migrate", "imap://alice@"+proxy.Addr(), "imap://alice@"+dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--report", report, "--progress", "never")
	if _, cuts := proxy.Stats(); cuts != 1 {
		t.Fatalf("%d cuts, want 1: the test tested nothing", cuts)
	}
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != n-1 || rep.Totals.Failed != 1 || len(rep.Failures) != 1 || rep.Failures[0].MessageID != "<m7@refusal>" {
		t.Errorf("copied %d, failed %d, failures %+v; want %d, 1, <m7@refusal> once", rep.Totals.Copied, rep.Totals.Failed, rep.Failures, n-1)
	}
	if got := len(dst.Snapshot(t, "alice")["INBOX"]); got != n-1 {
		t.Errorf("destination holds %d, want %d", got, n-1)
	}
}
