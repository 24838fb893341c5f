package main

// End-to-end tests: the mailferry command, run in-process or as a separate
// binary, against two real Dovecot instances (separator "/" at the source,
// "." at the destination). The corpus of real and broken mail is taken from
// ../shared/corpus/dev where it exists.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats/corpus"
	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/memserver"
)

// corpusDir finds the shared corpus's NAME directory ("" when absent).
func corpusDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := corpus.Dir(name)
	if err != nil {
		t.Log(err)
		return ""
	}
	return dir
}

// testMessages is the corpus spread over nested folders with flags and
// dates, or, without the corpus, generated mail (and the test says so).
func testMessages(t testing.TB, limit int) []dovecottest.SeedMessage {
	t.Helper()
	folders := []string{"INBOX", "Sent", "Archive/2023", "Archive/2024/Q1", "Lists/dev.team", "Entwürfe/Über", "INBOX/Sub"}
	flagSets := [][]string{nil, {`\Seen`}, {`\Seen`, `\Answered`}, {`\Flagged`}, {`\Seen`, `$Forwarded`}, {`\Draft`}, {`\Seen`, `\Deleted`}}
	var bodies [][]byte
	if dir := corpusDir(t, "dev"); dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, b)
		}
	} else {
		t.Log("the shared corpus is absent: using generated messages instead of the real corpus")
		// As many as the corpus's dev set (985): the interruption tests
		// stop a run limited to 150 messages a second after 2.5 s, which
		// 300 messages had finished by.
		for _, m := range memserver.DemoMessages(7, 985) {
			bodies = append(bodies, m.Body)
		}
	}
	if limit > 0 && len(bodies) > limit {
		bodies = bodies[:limit]
	}
	base := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	msgs := make([]dovecottest.SeedMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = dovecottest.SeedMessage{
			Folder: folders[i%len(folders)],
			Body:   b,
			Flags:  flagSets[i%len(flagSets)],
			Date:   base.Add(time.Duration(i) * 97 * time.Minute),
		}
	}
	return msgs
}

// pair is a source and a destination Dovecot with alice on both.
type pair struct {
	src, dst *dovecottest.Server
	state    string
}

func newPair(t testing.TB) *pair {
	t.Helper()
	p := &pair{
		src:   dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUse: true}),
		dst:   dovecottest.Start(t, dovecottest.Options{Separator: '.', SpecialUse: true, SentName: "Sent Items"}),
		state: t.TempDir(),
	}
	setenv(t, "MAILFERRY_SRC_PASSWORD", p.src.Users["alice"])
	setenv(t, "MAILFERRY_DST_PASSWORD", p.dst.Users["alice"])
	return p
}

func (p *pair) args(extra ...string) []string {
	a := []string{"migrate",
		"imap://alice@" + p.src.IMAPAddr(), "imap://alice@" + p.dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", p.state, "--progress", "never"}
	return append(a, extra...)
}

// runBound is how long one mailferry run of a test may last. A run still
// going then is a hang: the test fails naming it, with every goroutine's
// stack, instead of the whole package meeting go test's -timeout with no
// test named.
const runBound = 3 * time.Minute

// mailferry runs the command in-process and returns exit code and output.
// Past runBound it prints every goroutine's stack to stderr (seen even if the
// run never returns), fails t and cancels the run.
func mailferry(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hang := time.AfterFunc(runBound, func() {
		dumpGoroutines(fmt.Sprintf("%s: mailferry %q still running after %v", t.Name(), args, runBound))
		t.Errorf("mailferry %q still running after %v: a hang (goroutines on stderr); cancelling it", args, runBound)
		cancel()
	})
	defer hang.Stop()
	var out, errb bytes.Buffer
	code := runEnv(ctx, args, getenvFor(t), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// dumpGoroutines writes why and every goroutine's stack to stderr: a hung
// test's evidence, seen even if the test never returns.
func dumpGoroutines(why string) {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	fmt.Fprintf(os.Stderr, "%s; every goroutine:\n%s\n", why, buf)
}

// awaitExit waits for an in-process run that was told to stop (its
// context cancelled) and returns its exit code. One that has not returned
// 30 s later is a hang: every goroutine's stack goes to stderr and t fails.
func awaitExit(t testing.TB, done <-chan int) int {
	t.Helper()
	select {
	case code := <-done:
		return code
	case <-time.After(30 * time.Second):
		dumpGoroutines(t.Name() + ": the run did not stop 30 s after its cancel")
		t.Fatal("the run did not stop 30 s after its cancel: a hang (goroutines on stderr)")
		return -1
	}
}

// mailferryCmd is the built binary (bin) run as a child with t's
// environment, bounded by runBound (boundedCmd).
func mailferryCmd(t testing.TB, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, cancel := boundedCmd(t.Name(), bin, args...)
	t.Cleanup(cancel)
	cmd.Env = environFor(t)
	return cmd
}

// boundedCmd is bin run with args as a child that gets SIGQUIT once it has
// run runBound, which makes a Go program print every goroutine's stack to
// its stderr and exit, and SIGKILL 10 s later: a hung child ends its test
// with its stacks in the output, not the whole suite. who names the test
// on stderr; cancel releases the timer once the child is done.
func boundedCmd(who, bin string, args ...string) (*exec.Cmd, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), runBound)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error {
		if ctx.Err() != context.DeadlineExceeded {
			return cmd.Process.Kill() // its test ended and left it running
		}
		fmt.Fprintf(os.Stderr, "%s: mailferry %q still running after %v: SIGQUIT (its goroutines follow in its output)\n", who, args, runBound)
		return cmd.Process.Signal(syscall.SIGQUIT)
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd, cancel
}

// testEnv holds each test's own environment variables (setenv), so that
// tests need not change the process's with t.Setenv and may run in
// parallel.
var testEnv sync.Map // test name -> *sync.Map of variables

// setenv sets an environment variable for the mailferry runs of t (and of
// its subtests): in-process (mailferry, runEnv) and as a child process
// (environFor).
func setenv(t testing.TB, key, value string) {
	m, _ := testEnv.LoadOrStore(t.Name(), &sync.Map{})
	m.(*sync.Map).Store(key, value)
	t.Cleanup(func() { m.(*sync.Map).Delete(key) })
}

// lookupTestEnv finds key set by setenv for t or one of its parent tests.
func lookupTestEnv(t testing.TB, key string) (string, bool) {
	for name := t.Name(); ; {
		if m, ok := testEnv.Load(name); ok {
			if v, ok := m.(*sync.Map).Load(key); ok {
				return v.(string), true
			}
		}
		i := strings.LastIndex(name, "/")
		if i < 0 {
			return "", false
		}
		name = name[:i]
	}
}

// getenvFor is os.Getenv with t's own variables first.
func getenvFor(t testing.TB) func(string) string {
	return func(key string) string {
		if v, ok := lookupTestEnv(t, key); ok {
			return v
		}
		return os.Getenv(key)
	}
}

// environFor is the environment of a mailferry child process run by t.
func environFor(t testing.TB) []string {
	env := os.Environ()
	for _, key := range []string{"MAILFERRY_SRC_PASSWORD", "MAILFERRY_DST_PASSWORD"} {
		if v, ok := lookupTestEnv(t, key); ok {
			env = append(env, key+"="+v)
		}
	}
	return env
}

func readReport(t testing.TB, path string) migrate.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r migrate.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// msgKey is what must be equal for a message on both sides.
func msgKey(m dovecottest.MessageState) string {
	return fmt.Sprintf("%s %s %s", m.SHA256, strings.Join(m.Flags, ","), m.Date.UTC().Format(time.RFC3339))
}

// sameContent checks that every source folder's messages (hash, flags,
// date; as a multiset, so a duplicate shows) are at the destination folder
// the report names, and that the destination holds nothing else.
func sameContent(t *testing.T, src, dst dovecottest.Snapshot, rep migrate.Report) {
	t.Helper()
	dest := map[string]string{}
	for _, f := range rep.Folders {
		dest[f.Source] = f.Destination
	}
	seen := map[string]bool{}
	for name, msgs := range src {
		display := strings.ReplaceAll(name, "/", "/") // the source separator is "/"
		dname, ok := dest[display]
		if !ok {
			if len(msgs) > 0 {
				t.Errorf("source folder %q with %d messages is not in the report", name, len(msgs))
			}
			continue
		}
		seen[dname] = true
		if got, want := keys(dst[dname]), keys(msgs); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("folder %q -> %q: destination has %d messages, source %d; first difference: %s",
				name, dname, len(got), len(want), firstDiff(want, got))
		}
	}
	for name, msgs := range dst {
		if !seen[name] && len(msgs) > 0 {
			t.Errorf("destination folder %q holds %d messages no source folder maps to", name, len(msgs))
		}
	}
}

func keys(ms []dovecottest.MessageState) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = msgKey(m)
	}
	sort.Strings(out)
	return out
}

func firstDiff(want, got []string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, k := range want {
		w[k]++
	}
	for _, k := range got {
		g[k]++
	}
	diffs := 0
	first := ""
	for k, n := range w {
		if g[k] != n {
			diffs++
			if first == "" {
				first = fmt.Sprintf("%s: source %d, destination %d", k, n, g[k])
			}
		}
	}
	if first != "" {
		return fmt.Sprintf("%s (%d keys differ)", first, diffs)
	}
	for k, n := range g {
		if w[k] != n {
			return fmt.Sprintf("%s: source %d, destination %d", k, w[k], n)
		}
	}
	return "none"
}

func total(s dovecottest.Snapshot) int {
	n := 0
	for _, m := range s {
		n += len(m)
	}
	return n
}

func TestMigrateCorpusKeepsBytesFlagsDates(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")

	report := filepath.Join(t.TempDir(), "report.json")
	code, out, errOut := mailferry(t, p.args("--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != len(msgs) || rep.Totals.Failed != 0 {
		t.Errorf("copied %d of %d, failed %d", rep.Totals.Copied, len(msgs), rep.Totals.Failed)
	}
	after := p.dst.Snapshot(t, "alice")
	sameContent(t, before, after, rep)
	if total(after) != len(msgs) {
		t.Errorf("destination holds %d messages, want %d", total(after), len(msgs))
	}
	// The special-use folder went to the destination's \Sent, and a name
	// holding the destination separator arrived under a name the report shows.
	dests := map[string]migrate.FolderReport{}
	for _, f := range rep.Folders {
		dests[f.Source] = f
	}
	if got := dests["Sent"].Destination; got != "Sent Items" {
		t.Errorf("Sent went to %q, want the destination's \\Sent folder %q", got, "Sent Items")
	}
	if f := dests["Lists/dev.team"]; f.Destination != "Lists.dev_team" || !strings.Contains(f.Note, "Lists.dev_team") {
		t.Errorf("Lists/dev.team went to %q with note %q", f.Destination, f.Note)
	}
	if got := dests["Entwürfe/Über"].Destination; got != "Entwürfe.Über" {
		t.Errorf("non-ASCII folder went to %q", got)
	}

	// A rerun copies nothing and changes nothing.
	report2 := filepath.Join(t.TempDir(), "report2.json")
	code, out, errOut = mailferry(t, p.args("--report", report2)...)
	if code != 0 {
		t.Fatalf("rerun: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report2); r.Totals.Copied != 0 || r.Totals.Skipped != len(msgs) {
		t.Errorf("rerun copied %d, skipped %d; want 0 and %d", r.Totals.Copied, r.Totals.Skipped, len(msgs))
	}
	if again := p.dst.Snapshot(t, "alice"); !sameSnapshot(after, again) {
		t.Error("the rerun changed the destination")
	}

	// A lost state re-indexes the destination from headers: still nothing copied.
	if err := os.RemoveAll(p.state); err != nil {
		t.Fatal(err)
	}
	report3 := filepath.Join(t.TempDir(), "report3.json")
	code, out, errOut = mailferry(t, p.args("--report", report3)...)
	if code != 0 {
		t.Fatalf("run without state: exit %d\n%s\n%s", code, out, errOut)
	}
	if r := readReport(t, report3); r.Totals.Copied != 0 {
		t.Errorf("without state the run copied %d messages again; want 0", r.Totals.Copied)
	}
	sameContent(t, before, p.dst.Snapshot(t, "alice"), rep)
}

func sameSnapshot(a, b dovecottest.Snapshot) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i].UID != w[i].UID || msgKey(v[i]) != msgKey(w[i]) {
				return false
			}
		}
	}
	return true
}

// buildBinary builds mailferry once per test binary for subprocess tests.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailferry-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "mailferry")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

func TestMigrateSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: the kill test runs the corpus four times")
	}
	p := newPair(t)
	msgs := testMessages(t, 0)
	p.src.Seed(t, "alice", msgs)
	before := p.src.Snapshot(t, "alice")
	bin := binary(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 0
	for i := 0; i < 3; i++ {
		cmd := mailferryCmd(t, bin, p.args("--jobs", "2")...)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(50+rng.IntN(600)) * time.Millisecond
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			t.Logf("run %d ended by itself before the kill at %s (%v)", i+1, delay, err)
		case <-time.After(delay):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
			t.Logf("run %d killed after %s", i+1, delay)
		}
	}
	report := filepath.Join(t.TempDir(), "report.json")
	cmd := mailferryCmd(t, bin, p.args("--report", report)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("final run: %v\n%s", err, out)
	}
	rep := readReport(t, report)
	after := p.dst.Snapshot(t, "alice")
	sameContent(t, before, after, rep)
	if total(after) != len(msgs) {
		t.Errorf("after %d kills the destination holds %d messages, want exactly %d", kills, total(after), len(msgs))
	}
}

func TestWrongPasswordExits1WithOneLine(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	secret := "not-the-password-" + fmt.Sprint(rand.Int())
	setenv(t, "MAILFERRY_SRC_PASSWORD", secret)
	code, out, errOut := mailferry(t, p.args()...)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) != 1 || !strings.Contains(strings.ToLower(lines[0]), "authentication failed") {
		t.Errorf("want one line naming the authentication failure, got:\n%s", errOut)
	}
	for _, s := range []string{secret, p.dst.Users["alice"]} {
		if strings.Contains(out+errOut, s) {
			t.Errorf("a password appears in the output:\n%s%s", out, errOut)
		}
	}
}

func TestPlaintextLoginRefusedWithoutTLSNone(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	args := []string{"migrate", "imap://alice@" + p.src.IMAPAddr(), "imap://alice@" + p.dst.IMAPAddr(),
		"--dst-tls", "none", "--state-dir", p.state, "--progress", "never"}
	code, out, errOut := mailferry(t, args...)
	if code != 1 || !strings.Contains(errOut, "STARTTLS") {
		t.Fatalf("exit %d, want 1 with a STARTTLS refusal\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, p.src.Users["alice"]) {
		t.Error("the password appears in the output")
	}
}

func TestDedupAccountKeepsOneCopy(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 40)
	// The same 40 messages filed in two folders.
	var seed []dovecottest.SeedMessage
	for _, m := range msgs {
		a, b := m, m
		a.Folder, b.Folder = "INBOX", "Labels/Work"
		seed = append(seed, a, b)
	}
	p.src.Seed(t, "alice", seed)
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errOut := mailferry(t, p.args("--dedup", "account", "--report", report)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	snap := p.dst.Snapshot(t, "alice")
	if n := len(snap["INBOX"]); n != 40 || len(snap["Labels.Work"]) != 0 {
		t.Errorf("INBOX has %d, Labels.Work %d; want every message once, in INBOX", n, len(snap["Labels.Work"]))
	}
}

func TestChangedUIDValidityCopiesNothingAgain(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	msgs := testMessages(t, 30)
	for i := range msgs {
		msgs[i].Folder = "Projects"
	}
	p.src.Seed(t, "alice", msgs)
	if code, out, errOut := mailferry(t, p.args()...); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	// Delete and recreate the folder with the same messages: a new UIDVALIDITY.
	c := p.src.Client(t, "alice")
	if err := c.Delete("Projects").Wait(); err != nil {
		t.Fatal(err)
	}
	c.Close()
	p.src.Seed(t, "alice", msgs)
	report := filepath.Join(t.TempDir(), "r.json")
	if code, out, errOut := mailferry(t, p.args("--report", report)...); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	rep := readReport(t, report)
	if rep.Totals.Copied != 0 {
		t.Errorf("after a UIDVALIDITY change %d messages were copied again; want 0", rep.Totals.Copied)
	}
	if n := len(p.dst.Snapshot(t, "alice")["Projects"]); n != len(msgs) {
		t.Errorf("destination Projects has %d messages, want %d", n, len(msgs))
	}
}
