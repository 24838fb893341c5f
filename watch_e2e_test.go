package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

// watchMessage is the n-th message delivered during a watch test.
func watchMessage(n int) dovecottest.SeedMessage {
	return dovecottest.SeedMessage{Body: []byte(fmt.Sprintf("Message-ID: <watch-net-%d@example.com>\r\nSubject: %d\r\n\r\nbody %d\r\n", n, n, n))}
}

// waitInbox waits up to limit until the destination INBOX holds n
// messages; ended, when it yields, means the watch is gone.
func waitInbox(t *testing.T, dc func() *imapclient.Client, n int, limit time.Duration, what string, ended func() bool, logs func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c := dc()
		got := len(inboxFlags(t, c))
		c.Close()
		if got == n {
			return time.Since(start)
		}
		if ended() {
			t.Fatalf("the watch ended before %s\n%s", what, logs())
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: the destination INBOX holds %d messages after %v, want %d\n%s", what, got, limit, n, logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --watch keeps going through a connection cut (every connection to the
// source dropped at once, the IDLE one included) and a restart of the
// source server (down for 2 s, then back on the same port with the same
// mail): deliveries after each arrive at the destination, and a flag change
// after the restart too.
func TestWatchSurvivesCutAndRestart(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	proxy, err := faultproxy.New(p.src.IMAPAddr(), faultproxy.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(1)})
	dc := func() *imapclient.Client { return p.dst.Client(t, "alice") }
	c := dc()
	inboxFlags(t, c) // the special-use folders, made before the watch (see TestWatchFollowsTheSource)
	c.Close()
	args := []string{"migrate", "imap://alice@" + proxy.Addr(), "imap://alice@" + p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", p.state, "--progress", "never",
		"--watch", "--interval", "300ms"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- runEnv(ctx, args, getenvFor(t), strings.NewReader(""), &out, &errb) }()
	code := -1
	ended := func() bool {
		select {
		case code = <-done:
			return true
		default:
			return code != -1
		}
	}
	logs := func() string { return out.String() + "\n" + errb.String() }

	waitInbox(t, dc, 1, 20*time.Second, "the first pass", ended, logs)
	time.Sleep(500 * time.Millisecond) // in IDLE now
	if n := proxy.CutActive(); n == 0 {
		t.Fatalf("no connection to the source was open to cut: the watch holds none while it waits")
	}
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(2)})
	d := waitInbox(t, dc, 2, 15*time.Second, "a delivery after the cut", ended, logs)
	t.Logf("after the cut: delivered in %v", d.Round(time.Millisecond))

	p.src.Restart(t, 2*time.Second)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(3)})
	d = waitInbox(t, dc, 3, 30*time.Second, "a delivery after the restart", ended, logs)
	t.Logf("after the restart: delivered in %v", d.Round(time.Millisecond))

	sc := p.src.Client(t, "alice")
	if _, err := sc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var first imap.UIDSet
	first.AddNum(1)
	if err := sc.Store(first, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := dc()
		fl := inboxFlags(t, c)
		c.Close()
		if len(fl) > 0 && hasFlag(fl[0], imap.FlagFlagged) {
			break
		}
		if ended() || time.Now().After(deadline) {
			t.Fatalf("a flag change after the restart did not arrive within 15 s\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if !ended() {
		code = awaitExit(t, done)
	}
	if code != 0 {
		t.Errorf("the watch stopped with exit %d, want 0\n%s", code, logs())
	}
	if !strings.Contains(errb.String(), "trying again in") {
		t.Errorf("the watch did not say it was trying again while the source was down:\n%s", errb.String())
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, g := range flags {
		if strings.EqualFold(string(g), string(f)) {
			return true
		}
	}
	return false
}

// SIGTERM ends a watch (the mailferry binary) cleanly: exit status 0, a
// line that says the state is saved, and the next run (no --watch) finds
// nothing to copy and costs no FETCH: the no-op rerun.
func TestWatchStopsOnSIGTERMWithTheStateSaved(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	dc := p.dst.Client(t, "alice")
	inboxFlags(t, dc) // the special-use folders, made before the watch
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(1)})
	cmd := mailferryCmd(t, binary(t), p.args("--watch", "--interval", "200ms")...)
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ended := func() bool {
		select {
		case err := <-done:
			done <- err
			return true
		default:
			return false
		}
	}
	logs := func() string { return out.String() + "\n" + errb.String() }
	dcf := func() *imapclient.Client { return p.dst.Client(t, "alice") }
	waitInbox(t, dcf, 1, 20*time.Second, "the first pass", ended, logs)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(2)})
	waitInbox(t, dcf, 2, 15*time.Second, "a delivery", ended, logs)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the watch did not end within 20 s of SIGTERM\n%s", logs())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(errb.String(), "watch stopped") {
		t.Errorf("after SIGTERM: exit %d, want 0 and a line saying the watch stopped\n%s", code, logs())
	}
	report := filepath.Join(t.TempDir(), "report.json")
	if code, out, errOut := mailferry(t, p.args("--report", report)...); code != 0 {
		t.Fatalf("the run after the watch: exit %d\n%s\n%s", code, out, errOut)
	}
	if rep := readReport(t, report); rep.Totals.Copied != 0 || rep.Totals.Skipped != 2 {
		t.Errorf("the run after the watch: %+v, want nothing copied and the 2 messages skipped", rep.Totals)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWatch runs `mailferry migrate --watch --interval 200ms` from p's
// source to its destination in the background. ended says whether the watch
// is over; awaitEnd waits up to limit for it to end on its own (failing the
// test, naming after what, if it does not) and returns its exit status;
// stop cancels it and returns its exit status.
func startWatch(t *testing.T, p *pair) (out, errb *syncBuffer, ended func() bool, awaitEnd func(limit time.Duration, after string) int, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	out, errb = &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runEnv(ctx, p.args("--watch", "--interval", "200ms"), getenvFor(t), strings.NewReader(""), out, errb)
	}()
	exit := -1
	ended = func() bool {
		if exit != -1 {
			return true
		}
		select {
		case exit = <-done:
			return true
		default:
			return false
		}
	}
	awaitEnd = func(limit time.Duration, after string) int {
		t.Helper()
		for deadline := time.Now().Add(limit); !ended(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the watch still runs %v after %s\n%s\n%s", limit, after, out.String(), errb.String())
			}
		}
		return exit
	}
	stop = func() int {
		cancel()
		if !ended() {
			exit = awaitExit(t, done)
		}
		return exit
	}
	return out, errb, ended, awaitEnd, stop
}

// A login refused in the middle of a watch, with the password that has
// worked all along, does not end it: Dovecot answers "Authentication
// failed." to a good password while its auth process is down (a restart,
// or the moment a server is stopped: how TestWatchFollowsTheSource once
// failed in CI). The watch tries again; once logins are accepted again the
// next delivery arrives.
func TestWatchOutlastsARefusedLogin(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	dc := func() *imapclient.Client { return p.dst.Client(t, "alice") }
	c := dc()
	inboxFlags(t, c) // the special-use folders, made before the watch (see TestWatchFollowsTheSource)
	c.Close()
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(1)})
	out, errb, ended, _, stop := startWatch(t, p)
	logs := func() string { return out.String() + "\n" + errb.String() }
	waitInbox(t, dc, 1, 20*time.Second, "the first pass", ended, logs)

	p.src.RefuseLogins(t, "alice", true)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "authentication failed") {
		if ended() || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ended() {
		t.Fatalf("the watch ended on one refused login of a password that had worked\n%s", logs())
	}
	if !strings.Contains(errb.String(), "authentication failed") {
		t.Fatalf("no pass was refused within 20 s of the source refusing logins\n%s", logs())
	}
	p.src.RefuseLogins(t, "alice", false)
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(2)})
	waitInbox(t, dc, 2, 30*time.Second, "a delivery after logins were accepted again", ended, logs)
	if code := stop(); code != 0 {
		t.Errorf("the watch stopped with exit %d, want 0\n%s", code, logs())
	}
	if !strings.Contains(errb.String(), "trying again in") {
		t.Errorf("the watch did not say it was trying again after the refusal:\n%s", errb.String())
	}
}

// Logins that stay refused end the watch (exit 1, the server's words on one
// line) after watchAuthTries refusals in a row, not at the first and not
// never: a password changed during the cutover is not tried forever.
func TestWatchEndsWhenLoginsStayRefused(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	dc := func() *imapclient.Client { return p.dst.Client(t, "alice") }
	c := dc()
	inboxFlags(t, c)
	c.Close()
	p.src.Seed(t, "alice", []dovecottest.SeedMessage{watchMessage(1)})
	out, errb, ended, awaitEnd, stop := startWatch(t, p)
	defer stop()
	logs := func() string { return out.String() + "\n" + errb.String() }
	waitInbox(t, dc, 1, 20*time.Second, "the first pass", ended, logs)

	p.src.RefuseLogins(t, "alice", true)
	if code := awaitEnd(60*time.Second, "the source began refusing every login"); code != 1 {
		t.Errorf("the watch ended with exit %d, want 1\n%s", code, logs())
	}
	e := errb.String()
	retries := 0
	for _, l := range strings.Split(e, "\n") {
		if strings.HasPrefix(l, "mailferry: watch: ") && strings.Contains(l, "authentication failed: ") && strings.Contains(l, "trying again in") {
			retries++
		}
	}
	if retries != watchAuthTries-1 {
		t.Errorf("want %d refusals tried again before the watch ended, got %d:\n%s", watchAuthTries-1, retries, e)
	}
	lines := strings.Split(strings.TrimSpace(e), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "mailferry: authentication failed: ") || !strings.Contains(last, "Authentication failed.") {
		t.Errorf("the last line is %q, want the refusal in the server's words", last)
	}
	if pw := p.src.Users["alice"]; strings.Contains(e, pw) {
		t.Errorf("the password is in the output:\n%s", e)
	}
}

// A watch whose first pass is refused ends at once, as a run without
// --watch does: the password has never worked.
func TestWatchEndsAtOnceWhenTheFirstLoginIsRefused(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.src.RefuseLogins(t, "alice", true)
	_, errb, _, awaitEnd, stop := startWatch(t, p)
	defer stop()
	if code := awaitEnd(20*time.Second, "its first login was refused"); code != 1 || strings.Contains(errb.String(), "trying again") {
		t.Errorf("exit %d, want 1 with no retry\n%s", code, errb.String())
	}
}
