package main

// Counts that are true (issue 9, item 6): what the summary and the report
// say after an interruption or a cut is what the destination holds, counted
// at the destination (IMAP snapshot, files on disk), never taken from our
// own output; Ctrl-C says so and exits 130; the report is written on every
// exit and its path is checked before anything happens; a run that failed
// to start prints no table and no chain head; a refused connection at start
// fails at once.

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// interruptedLine is what a stopped run says last on stderr.
var interruptedLine = regexp.MustCompile(`^mailferry: interrupted: (\d+) copied so far; run the same command again to resume$`)

// summaryCopied is the number in the summary's "copied N messages" line.
func summaryCopied(t *testing.T, stdout string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^copied (\d+) messages?\b`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no \"copied N messages\" line in the summary:\n%s", stdout)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// interruptRun starts the built binary, sends sig after delay, and returns
// exit code, stdout and stderr. The run must still be copying at delay.
func interruptRun(t *testing.T, args []string, sig syscall.Signal, delay time.Duration) (int, string, string) {
	t.Helper()
	cmd := mailferryCmd(t, binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the run ended by itself (%v) before the signal at %v: nothing to interrupt\n%s\n%s", err, delay, out.String(), errb.String())
	case <-time.After(delay):
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the run did not end within 60 s of %v\n%s\n%s", sig, out.String(), errb.String())
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// wantInterrupted checks exit 130 and the last stderr line, and returns N.
func wantInterrupted(t *testing.T, code int, stdout, stderr string) int {
	t.Helper()
	lines := stderrLines(stderr)
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1]
	}
	m := interruptedLine.FindStringSubmatch(last)
	if code != 130 || m == nil {
		t.Errorf("exit %d, last line %q; want 130 and \"mailferry: interrupted: N copied so far; run the same command again to resume\"\nstdout:\n%s\nstderr:\n%s",
			code, last, stdout, stderr)
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// Ctrl-C in the middle of an IMAP -> IMAP copy: the printed count, the
// summary, the report (total and each folder) equal what the destination
// holds, nothing is "skipped" on a fresh destination, and a rerun completes
// without a duplicate.
func TestInterruptCountsWhatTheDestinationHolds(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	report := filepath.Join(t.TempDir(), "report.json")
	// About 150 messages a second: the whole copy takes several seconds.
	args := p.args("--jobs", "3", "--max-messages-per-second", "150", "--report", report)
	code, out, errOut := interruptRun(t, args, syscall.SIGINT, 2500*time.Millisecond)
	n := wantInterrupted(t, code, out, errOut)

	after := p.dst.Snapshot(t, "alice")
	held := total(after)
	if held == 0 || held == len(msgs) {
		t.Fatalf("the destination holds %d of %d messages: the interruption was not mid-copy", held, len(msgs))
	}
	if n >= 0 && n != held {
		t.Errorf("\"interrupted: %d copied so far\", but the destination holds %d messages", n, held)
	}
	if c := summaryCopied(t, out); c != held {
		t.Errorf("summary: copied %d, the destination holds %d", c, held)
	}
	rep := readReport(t, report) // written on an interruption
	if rep.Totals.Copied != held || rep.Totals.Skipped != 0 {
		t.Errorf("report: copied %d, skipped %d; the fresh destination holds %d (want copied %d, skipped 0)",
			rep.Totals.Copied, rep.Totals.Skipped, held, held)
	}
	listed := 0
	for _, f := range rep.Folders {
		if got := len(after[f.Destination]); f.Copied != got {
			t.Errorf("report: folder %s -> %s copied %d, the destination folder holds %d", f.Source, f.Destination, f.Copied, got)
		}
		listed += f.Copied
	}
	if listed != held {
		t.Errorf("the report's folders add up to %d copied, the destination holds %d", listed, held)
	}
	t.Logf("interrupted with %d of %d messages at the destination", held, len(msgs))

	// The same command again completes the copy, without a duplicate.
	cmd := mailferryCmd(t, binary(t), p.args("--report", report)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, b)
	}
	rep = readReport(t, report)
	final := p.dst.Snapshot(t, "alice")
	sameContent(t, before, final, rep)
	if total(final) != len(msgs) {
		t.Errorf("after the rerun the destination holds %d messages, want %d", total(final), len(msgs))
	}
	if rep.Totals.Copied != len(msgs)-held {
		t.Errorf("the rerun copied %d, want %d (the rest)", rep.Totals.Copied, len(msgs)-held)
	}
}

// messageFiles counts the message files of a Maildir++ archive (cur/ and
// new/ of every folder; tmp/ holds nothing that was stored).
func messageFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if d := filepath.Base(filepath.Dir(path)); d == "cur" || d == "new" {
				n++
			}
		}
		return nil
	})
	return n
}

// SIGTERM in the middle of a POP3 -> Maildir archive: the printed count
// equals the message files on disk and the manifest's lines.
func TestInterruptPOP3ArchiveCountsFiles(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	for i := range msgs {
		msgs[i].Folder = "INBOX"
	}
	p.src.Seed(t, "alice", msgs)
	dir := filepath.Join(t.TempDir(), "archive")
	report := filepath.Join(t.TempDir(), "report.json")
	args := []string{"archive", "pop3://alice@" + p.src.POP3Addr(), dir, "--src-tls", "none",
		"--state-dir", p.state, "--progress", "never", "--max-messages-per-second", "150", "--report", report}
	code, out, errOut := interruptRun(t, args, syscall.SIGTERM, 2500*time.Millisecond)
	n := wantInterrupted(t, code, out, errOut)
	files := messageFiles(t, dir)
	listed := len(archivedBodies(t, dir))
	if files == 0 || files == len(msgs) {
		t.Fatalf("the archive holds %d of %d messages: the interruption was not mid-copy", files, len(msgs))
	}
	if n >= 0 && n != files || listed != files {
		t.Errorf("\"interrupted: %d copied so far\"; %d message files on disk, %d in the manifest", n, files, listed)
	}
	if c := summaryCopied(t, out); c != files {
		t.Errorf("summary: copied %d, %d message files on disk", c, files)
	}
	if rep := readReport(t, report); rep.Totals.Copied != files {
		t.Errorf("report: copied %d, %d message files on disk", rep.Totals.Copied, files)
	}
	if !strings.Contains(out, "manifest chain head: ") {
		t.Errorf("an interrupted archive run that stored messages prints no chain head:\n%s", out)
	}
	t.Logf("interrupted with %d of %d messages archived", files, len(msgs))
	if code, out, errOut := mailferry(t, "verify", dir); code != 0 {
		t.Errorf("verify after the interruption: exit %d\n%s\n%s", code, out, errOut)
	}
}

// Connections cut where the server has stored messages but its answer is
// lost: the run resumes and finds them there. They were copied by this run:
// the summary says copied = what the fresh destination holds, skipped 0.
func TestCutCountsCopiedNotSkipped(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	for _, c := range []struct {
		name string
		dstF faultproxy.Faults
	}{
		{"answer lost", faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
			Before: []byte("OK [APPENDUID"), Dir: faultproxy.ServerToClient, P: 1, MaxCuts: 3}}},
		{"random cuts", faultproxy.Faults{Seed: 7, CutAfterBytes: faultproxy.Cut{
			Min: 1, Max: faultBytes(msgs) / 2, Dir: faultproxy.Both, P: 0.8, MaxCuts: 3}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := faultOnce(t, src, before, len(msgs), faultproxy.Faults{}, c.dstF, "--jobs", "2")
			if t.Failed() {
				return
			}
			if _, cuts := r.dstProxy.Stats(); cuts == 0 {
				t.Fatal("no connection was cut")
			}
			held := total(r.dst.Snapshot(t, "alice"))
			if r.rep.Totals.Copied != held || r.rep.Totals.Skipped != 0 {
				t.Errorf("report: copied %d, skipped %d; the fresh destination holds %d (want copied %d, skipped 0)",
					r.rep.Totals.Copied, r.rep.Totals.Skipped, held, held)
			}
		})
	}
	faultSourceUnchanged(t, src, before)
}

// countingListener accepts connections, counts them and closes them.
func countingListener(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	return l.Addr().String(), &n
}

// A report path that cannot be written fails at once, exit 2, one line,
// before any connection.
func TestReportPathCheckedBeforeAnyWork(t *testing.T) {
	t.Parallel()
	srcAddr, srcConns := countingListener(t)
	dstAddr, dstConns := countingListener(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", "x")
	setenv(t, "MAILFERRY_DST_PASSWORD", "x")
	for _, c := range []struct{ name, report string }{
		{"a new DIR/", filepath.Join(dir, "reports") + "/"},
		{"an existing directory", dir},
		{"parent is a file", filepath.Join(file, "report.json")},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, args := range [][]string{
				{"migrate", "imap://alice@" + srcAddr, "imap://alice@" + dstAddr, "--dst-tls", "none"},
				{"archive", "imap://alice@" + srcAddr, filepath.Join(dir, "archive")},
			} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				var out, errb bytes.Buffer
				began := time.Now()
				code := runEnv(ctx, append(args, "--src-tls", "none", "--state-dir", filepath.Join(dir, "state"),
					"--progress", "never", "--report", c.report), getenvFor(t), strings.NewReader(""), &out, &errb)
				cancel()
				if code != 2 || len(stderrLines(errb.String())) != 1 || !strings.Contains(errb.String(), "--report") {
					t.Errorf("%s --report %s: exit %d after %v, want 2 and one line naming --report\nstdout:\n%s\nstderr:\n%s",
						args[0], c.report, code, time.Since(began).Round(time.Millisecond), out.String(), errb.String())
				}
				if n := srcConns.Load() + dstConns.Load(); n != 0 {
					t.Errorf("%s --report %s: %d connections made before the report path was refused", args[0], c.report, n)
					srcConns.Store(0)
					dstConns.Store(0)
				}
			}
		})
	}
}

// A run that fails to start (wrong password, TLS refused) prints no table,
// no "copied 0 messages" and no chain head, and still writes its report.
func TestFailedStartPrintsNoTable(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.src.Seed(t, "alice", testMessages(t, 5))
	setenv(t, "MAILFERRY_SRC_PASSWORD", "not-the-password")
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")
	cases := map[string][]string{
		"migrate wrong password": p.args("--report", report),
		"archive wrong password": {"archive", "imap://alice@" + p.src.IMAPAddr(), filepath.Join(dir, "archive"),
			"--src-tls", "none", "--state-dir", p.state, "--progress", "never", "--report", report},
		"archive TLS refused": {"archive", "imap://alice@" + p.src.IMAPAddr(), filepath.Join(dir, "archive2"),
			"--state-dir", p.state, "--progress", "never", "--report", report},
		"migrate password file missing": p.args("--report", report, "--src-password-file", filepath.Join(dir, "no-such-file")),
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			os.Remove(report)
			code, out, errOut := mailferry(t, args...)
			if code != 1 || len(stderrLines(errOut)) != 1 {
				t.Errorf("exit %d, want 1 with one line\n%s", code, errOut)
			}
			if strings.TrimSpace(out) != "" {
				t.Errorf("a run that failed to start printed on stdout:\n%s", out)
			}
			if rep := readReport(t, report); rep.Error == "" {
				t.Error("the report does not say why the run stopped")
			}
		})
	}
}

// A server that refuses the connection at start: exit 1 at once with one
// line (no retries with backoff).
// Not parallel: it times the refusal (within 2 s), alone on the machine.
func TestRefusedAtStartFailsAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close() // nothing listens there now
	dir := t.TempDir()
	setenv(t, "MAILFERRY_SRC_PASSWORD", "x")
	setenv(t, "MAILFERRY_DST_PASSWORD", "x")
	for _, args := range [][]string{
		{"migrate", "imap://alice@" + closed, "maildir:" + filepath.Join(dir, "md")},
		{"archive", "pop3://alice@" + closed, filepath.Join(dir, "archive")},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var out, errb bytes.Buffer
		began := time.Now()
		code := runEnv(ctx, append(args, "--src-tls", "none", "--state-dir", filepath.Join(dir, "state"), "--progress", "never"),
			getenvFor(t), strings.NewReader(""), &out, &errb)
		took := time.Since(began)
		cancel()
		lines := stderrLines(errb.String())
		if code != 1 || took > 2*time.Second || len(lines) != 1 || !strings.Contains(lines[0], "refused") {
			t.Errorf("%s from a closed port: exit %d after %v, want 1 within 2 s and one line saying refused\nstdout:\n%s\nstderr:\n%s",
				args[0], code, took.Round(time.Millisecond), out.String(), errb.String())
		}
		if strings.TrimSpace(out.String()) != "" {
			t.Errorf("%s: a run refused at start printed on stdout:\n%s", args[0], out.String())
		}
	}
}

// The same stop in-process (so that -race sees the engine's stop): IMAP ->
// Maildir, the context canceled mid-copy; the count equals the files on disk.
func TestInterruptInProcessMaildir(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	dir := filepath.Join(t.TempDir(), "md")
	report := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2500*time.Millisecond, cancel)
	var out, errb bytes.Buffer
	code := runEnv(ctx, []string{"migrate", "imap://alice@" + p.src.IMAPAddr(), "maildir:" + dir, "--src-tls", "none",
		"--state-dir", p.state, "--progress", "never", "--jobs", "3", "--max-messages-per-second", "150", "--report", report},
		getenvFor(t), strings.NewReader(""), &out, &errb)
	cancel()
	n := wantInterrupted(t, code, out.String(), errb.String())
	files := messageFiles(t, dir)
	if files == 0 || files == len(msgs) {
		t.Fatalf("the Maildir holds %d of %d messages: the interruption was not mid-copy", files, len(msgs))
	}
	rep := readReport(t, report)
	if n != files || rep.Totals.Copied != files || rep.Totals.Skipped != 0 {
		t.Errorf("\"interrupted: %d copied so far\", report copied %d skipped %d; %d message files on disk", n, rep.Totals.Copied, rep.Totals.Skipped, files)
	}
	if rep.Error == "" {
		t.Error("the report of an interrupted run does not say so")
	}
}

// A batch stopped mid-run says so too, with the accounts' true total.
func TestInterruptBatchSaysSo(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	dir := t.TempDir()
	md := filepath.Join(dir, "md")
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(p.src.Users["alice"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "accounts.csv")
	row := "source,destination,src_password_file\nimap://alice@" + p.src.IMAPAddr() + ",maildir:" + md + ",pw\n"
	if err := os.WriteFile(csv, []byte(row), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(2500*time.Millisecond, cancel)
	var out, errb bytes.Buffer
	code := runEnv(ctx, []string{"migrate", "--batch", csv, "--src-tls", "none", "--state-dir", p.state,
		"--progress", "never", "--max-messages-per-second", "150"}, getenvFor(t), strings.NewReader(""), &out, &errb)
	cancel()
	n := wantInterrupted(t, code, out.String(), errb.String())
	files := messageFiles(t, md)
	if files == 0 || files == len(msgs) {
		t.Fatalf("the Maildir holds %d of %d messages: the interruption was not mid-copy", files, len(msgs))
	}
	if n >= 0 && n != files {
		t.Errorf("\"interrupted: %d copied so far\"; %d message files on disk", n, files)
	}
}
