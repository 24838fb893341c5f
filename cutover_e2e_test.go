package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// The command line of the cutover: --sync-deletions with --dry-run shows
// what would go, the summary and the report count flags updated and
// deletions at the destination, and --delete-source cannot be combined.
func TestCLISyncDeletionsAndFlags(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	body := func(n int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <cli-cutover-%d@example.com>\r\nSubject: %d\r\n\r\nbody\r\n", n, n))
	}
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: body(1)}, {Body: body(2)}, {Body: body(3)}})
	if code, out, errOut := mailferry(t, p.args()...); code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	c := p.src.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var first, second imap.UIDSet
	first.AddNum(1)
	second.AddNum(2)
	if err := c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(second, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(second).Close(); err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := mailferry(t, p.args("--sync-deletions", "--delete-source")...); code != 2 || !strings.Contains(errOut, "--sync-deletions") {
		t.Errorf("--sync-deletions with --delete-source: exit %d, %q; want a usage error", code, errOut)
	}
	code, out, errOut := mailferry(t, p.args("--sync-deletions", "--dry-run")...)
	if code != 0 || !strings.Contains(out, "would delete 1 messages at the destination") || !strings.Contains(out, "would update the flags of 1 messages") {
		t.Errorf("--dry-run: exit %d\n%s\n%s", code, out, errOut)
	}
	if n := len(p.dst.Snapshot(t, "alice")["INBOX"]); n != 3 {
		t.Fatalf("--dry-run changed the destination: %d messages", n)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut = mailferry(t, p.args("--sync-deletions", "--report", report)...)
	if code != 0 || !strings.Contains(out, "FLAGS UPDATED") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.FlagsUpdated != 1 || rep.Totals.DeletedAtDestination != 1 {
		t.Errorf("report totals %+v, want 1 flags updated and 1 deleted at the destination", rep.Totals)
	}
	snap := p.dst.Snapshot(t, "alice")["INBOX"]
	if len(snap) != 2 {
		t.Fatalf("destination INBOX holds %d messages, want 2", len(snap))
	}
	if !strings.Contains(strings.Join(snap[0].Flags, " "), `\Flagged`) {
		t.Errorf("first message has flags %q at the destination, want \\Flagged", snap[0].Flags)
	}
}

// --watch applies deliveries, flag changes and (with --sync-deletions)
// deletions as they happen, and stops cleanly on cancellation (what
// SIGINT/SIGTERM do in main) with exit status 0.
func TestWatchFollowsTheSource(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	body := func(n int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <watch-%d@example.com>\r\nSubject: %d\r\n\r\nbody\r\n", n, n))
	}
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: body(1)}})
	// The destination's special-use folders are made on first access
	// (auto = subscribe): make them now, not in two sessions at once (this
	// Dovecot then panics on its list index lock, see dovecottest).
	dc := p.dst.Client(t, "alice")
	inboxFlags(t, dc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, p.args("--watch", "--interval", "200ms", "--sync-deletions"), getenvFor(t), strings.NewReader(""), &out, &errb)
	}()
	waitFor := func(what string, ok func([][]imap.Flag) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !ok(inboxFlags(t, dc)) {
			select {
			case code := <-done:
				t.Fatalf("watch ended with %d before %s\n%s\n%s", code, what, out.String(), errb.String())
			default:
			}
			if time.Now().After(deadline) {
				cancel()
				awaitExit(t, done)
				t.Fatalf("watch: %s did not happen within 10 s\n%s\n%s", what, out.String(), errb.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	count := func(n int) func([][]imap.Flag) bool {
		return func(s [][]imap.Flag) bool { return len(s) == n }
	}
	waitFor("the first pass", count(1))
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: body(2)}})
	waitFor("a delivery", count(2))
	c := p.src.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var first, second imap.UIDSet
	first.AddNum(1)
	second.AddNum(2)
	if err := c.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Label1"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	waitFor("a flag change", func(s [][]imap.Flag) bool {
		return len(s) > 0 && slices.Contains(s[0], "$Label1")
	})
	if err := c.Store(second, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.UIDExpunge(second).Close(); err != nil {
		t.Fatal(err)
	}
	waitFor("a deletion", count(1))
	// A source that goes away does not end the watch: passes are tried again.
	p.src.Stop()
	time.Sleep(1500 * time.Millisecond)
	select {
	case code := <-done:
		t.Fatalf("watch ended with %d when the source went away\n%s", code, errb.String())
	default:
	}
	cancel()
	if code := awaitExit(t, done); code != 0 {
		t.Errorf("watch stopped with exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"1 copied", "1 flags updated", "1 deleted at the destination"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("watch output lacks %q:\n%s", want, out.String())
		}
	}
}

// inboxFlags is the flags of each message of INBOX, in UID order.
func inboxFlags(t *testing.T, c *imapclient.Client) [][]imap.Flag {
	t.Helper()
	sd, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sd.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, sd.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return int(a.UID) - int(b.UID) })
	var out [][]imap.Flag
	for _, m := range msgs {
		out = append(out, m.Flags)
	}
	return out
}

// With IDLE at the source, a delivery to INBOX reaches the destination at
// once, not after --interval.
// Not parallel: it times the delivery (within 5 s), alone on the machine.
func TestWatchIdleDeliversAtOnce(t *testing.T) {
	p := newPair(t)
	dc := p.dst.Client(t, "alice")
	inboxFlags(t, dc) // the special-use folders, made before the watch (see above)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: []byte("Message-ID: <idle-1@example.com>\r\n\r\none\r\n")}})
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, p.args("--watch", "--interval", "1m"), getenvFor(t), strings.NewReader(""), &out, &errb)
	}()
	defer func() {
		cancel()
		if code := awaitExit(t, done); code != 0 {
			t.Errorf("watch stopped with exit %d\n%s", code, errb.String())
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(inboxFlags(t, dc)) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the first pass did not end within 10 s\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // the watch is in IDLE now
	delivered := time.Now()
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: []byte("Message-ID: <idle-2@example.com>\r\n\r\ntwo\r\n")}})
	for len(inboxFlags(t, dc)) != 2 {
		if time.Since(delivered) > 5*time.Second {
			t.Fatalf("a delivery took more than 5 s with --interval 1m: IDLE did not wake the watch\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("delivered to the destination in %v", time.Since(delivered).Round(time.Millisecond))
}

// A rerun with a state made afresh (the state directory lost, or another
// machine) knows no flags it set: a copy that already has the source's
// flags is no change and is not counted; one that lacks a source flag gets
// it (and only that is counted); a flag set at the destination is kept.
func TestFreshStateRerunCountsOnlyRealFlagChanges(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	body := func(n int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <fresh-%d@example.com>\r\nSubject: %d\r\n\r\nbody\r\n", n, n))
	}
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{{Body: body(1), Flags: []string{`\Seen`, "$Label1"}},
		{Body: body(2), Flags: []string{`\Seen`}}, {Body: body(3)}})
	if code, out, errOut := mailferry(t, p.args()...); code != 0 {
		t.Fatalf("first run: exit %d\n%s\n%s", code, out, errOut)
	}
	c := p.src.Client(t, "alice")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var third imap.UIDSet
	third.AddNum(3)
	if err := c.Store(third, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	dc := p.dst.Client(t, "alice")
	if _, err := dc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var second imap.UIDSet
	second.AddNum(2)
	if err := dc.Store(second, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, "migrate", "imap://alice@"+p.src.IMAPAddr(), "imap://alice@"+p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", t.TempDir(), "--progress", "never", "--report", report)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report); r.Totals.FlagsUpdated != 1 || r.Totals.Copied != 0 {
		t.Errorf("rerun with a fresh state: %d flags updated, %d copied; want 1 (the \\Answered) and 0\n%s", r.Totals.FlagsUpdated, r.Totals.Copied, out)
	}
	want := []string{`$Label1 \Seen`, `\Flagged \Seen`, `\Answered`}
	for i, m := range p.dst.Snapshot(t, "alice")["INBOX"] {
		flags := slices.Clone(m.Flags)
		slices.Sort(flags)
		if i < len(want) && strings.Join(flags, " ") != want[i] {
			t.Errorf("destination message %d has flags %q, want %q", i+1, flags, want[i])
		}
	}
}
