package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailferry/mailferry/archive"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
	"github.com/mailferry/mailferry/migrate/servertest"
)

// The compatibility matrix (the README's table is written from it): one
// instance of every server kind, every server as the source into every
// other (30 ordered pairs), every server's archive in Maildir and in mbox
// and back into it, and POP3 from Dovecot, Cyrus and Courier. Each pair
// has its own user at the destination, so that many legs run the binary at
// once on the six instances (matrixParallel); then subtests check what
// each leg left. Every leg into a server first runs the mailferry binary
// until the destination has stored a message but not yet answered (a
// proxy holds the answer), kills it with SIGKILL and runs it again (an
// archive run is killed once its manifest lists a message); then
// it checks each message's bytes (where a server changes them, exactly
// that change: serverChange), flags, internal date and folder name, and
// that a rerun and a rerun with a fresh state directory copy 0. A small
// message set (roundTripMessages) keeps it quick; the full corpus runs on
// Dovecot only (TestMigrateCorpusKeepsBytesFlagsDates).

const (
	dovecotKind    servertest.Kind = "dovecot"     // Dovecot, '/' separator
	dovecotDotKind servertest.Kind = "dovecot-dot" // Dovecot, '.' separator
)

var matrixKinds = []servertest.Kind{dovecotKind, dovecotDotKind, servertest.Cyrus, servertest.CyrusAlt,
	servertest.Courier, servertest.Mailutils}

// matrixLogin is a user's login name on kind (mailutils: user@domain).
func matrixLogin(kind servertest.Kind, name string) string {
	if kind == servertest.Mailutils {
		return name + "@example.test"
	}
	return name
}

// matrixUsers: "src" holds the message set; "srcflat" the set without a
// nested folder (for mailutils as the destination); "from<kind>" receives
// from each other kind; "restore<format>" the archive; "pop" is read over
// POP3.
func matrixUsers(kind servertest.Kind) map[string]string {
	names := []string{"src", "srcflat", "pop", "restoremaildir", "restorembox"}
	for _, k := range matrixKinds {
		names = append(names, fromUser(k))
	}
	users := map[string]string{}
	for _, n := range names {
		users[matrixLogin(kind, n)] = n + "-secret-pw"
	}
	return users
}

func fromUser(k servertest.Kind) string { return "from" + strings.ReplaceAll(string(k), "-", "") }

// startMatrixNode starts a server of kind with the matrix's users; Dovecot
// is wrapped as a servertest.Server so that one set of helpers serves all.
func startMatrixNode(t *testing.T, kind servertest.Kind) *servertest.Server {
	t.Helper()
	users := matrixUsers(kind)
	switch kind {
	case dovecotKind, dovecotDotKind:
		sep := map[servertest.Kind]rune{dovecotKind: '/', dovecotDotKind: '.'}[kind]
		dc := dovecottest.Start(t, dovecottest.Options{Separator: sep, Users: users})
		return &servertest.Server{Server: dc, Kind: kind, User: "src"}
	}
	s := servertest.Start(t, kind, servertest.Options{Users: users})
	s.User = matrixLogin(kind, "src")
	return s
}

// loginURL is imap://LOGIN@addr (a mailutils login's '@' escaped).
func loginURL(login, addr string) string { return "imap://" + url.User(login).String() + "@" + addr }

// setFor is the message set for a leg: the nested folder unless mailutils
// is one side (an mbox file cannot have subfolders).
func setFor(kinds ...servertest.Kind) []dovecottest.SeedMessage {
	for _, k := range kinds {
		if k == servertest.Mailutils {
			return roundTripMessages(servertest.Mailutils)
		}
	}
	return roundTripMessages(servertest.Cyrus)
}

func setFolders(msgs []dovecottest.SeedMessage) []string {
	return []string{"INBOX", "Work", msgs[len(msgs)-1].Folder}
}

func seedAs(t *testing.T, s *servertest.Server, login string, msgs []dovecottest.SeedMessage) {
	t.Helper()
	var seed []dovecottest.SeedMessage
	for _, m := range msgs {
		m.Folder = s.Name(m.Folder)
		seed = append(seed, m)
	}
	s.Seed(t, login, seed)
}

// stored is one message as a server serves it.
type stored struct {
	raw   []byte
	flags string
	date  string
}

// contentOf returns folder path -> messages as s serves them to login, and
// checks that login has exactly these folders.
func contentOf(t *testing.T, s *servertest.Server, login string, folders []string) map[string][]stored {
	t.Helper()
	snap := s.Snapshot(t, login)
	out := map[string][]stored{}
	for _, f := range folders {
		name := s.Name(f)
		bodies := s.Bodies(t, login, name)
		if len(bodies) != len(snap[name]) {
			t.Fatalf("%s %s %q: %d bodies, %d messages", s.Kind, login, name, len(bodies), len(snap[name]))
		}
		for i, b := range bodies {
			m := snap[name][i]
			out[f] = append(out[f], stored{b, strings.Join(m.Flags, ","), m.Date.UTC().Format(time.RFC3339)})
		}
	}
	if len(snap) != len(folders) {
		t.Errorf("%s %s has folders %v, want %d: %v", s.Kind, login, keysOf(snap), len(folders), folders)
	}
	return out
}

func countOf(t *testing.T, s *servertest.Server, login string) int {
	t.Helper()
	n := 0
	for _, ms := range s.Snapshot(t, login) {
		n += len(ms)
	}
	return n
}

// entries is content as sorted "sha flags date" lines per folder, each
// body passed through f.
func entries(c map[string][]stored, f func([]byte) []byte) map[string][]string {
	out := map[string][]string{}
	for folder, ms := range c {
		for _, m := range ms {
			out[folder] = append(out[folder], fmt.Sprintf("%s %s %s", sha(f(m.raw)), m.flags, m.date))
		}
		sort.Strings(out[folder])
	}
	return out
}

// holds checks that login on dst holds what the source served, changed as
// dst changes what it stores (mailutils' own state headers taken off
// first), each message exactly once.
func holds(t *testing.T, what string, dst *servertest.Server, login string, from map[string][]stored, folders []string) {
	t.Helper()
	strip := func(b []byte) []byte { return b }
	if dst.Kind == servertest.Mailutils {
		strip = func(b []byte) []byte { b, _ = servertest.StripMailutilsHeaders(b); return b }
	}
	// (A message that holds mailutils' headers already, from a mailutils
	// source, gets them replaced when stored there again: both sides are
	// compared without them.)
	want := entries(from, func(b []byte) []byte { return strip(serverChange(dst.Kind, b)) })
	at := contentOf(t, dst, login, folders)
	if dst.Kind == servertest.Mailutils {
		checkMailutilsHeaders(t, what, at)
	}
	got := entries(at, strip)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: %s holds\n%v\nwant\n%v", what, dst.Kind, got, want)
	}
}

// checkMailutilsHeaders checks the headers mailutils added to what it
// serves: X-IMAPbase on a folder's first message, X-UID on each, Status on
// each with a flag, and "Status: O" on one without a flag once a session
// has had the folder selected read-write (the message is no longer
// \Recent).
func checkMailutilsHeaders(t *testing.T, what string, c map[string][]stored) {
	t.Helper()
	for folder, ms := range c {
		for i, m := range ms {
			_, names := servertest.StripMailutilsHeaders(m.raw)
			want := []string{"X-UID"}
			if i == 0 {
				want = []string{"X-IMAPbase", "X-UID"}
			}
			header, _, _ := bytes.Cut(m.raw, []byte("\r\n\r\n"))
			if m.flags != "" || bytes.Contains(header, []byte("\r\nStatus: O\r\n")) || bytes.HasSuffix(header, []byte("\r\nStatus: O")) {
				want = append(want, "Status")
			}
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Errorf("%s: mailutils %s message %d: added headers %v, want %v\n%q", what, folder, i, names, want, header)
			}
		}
	}
}

// step is one run of the mailferry binary in a leg.
type step struct {
	name   string
	code   int
	out    string
	report string // the --report file
	err    string // why the run could not be carried out as designed
}

// runBinary runs the mailferry binary bin with the passwords in its
// environment and a --report file in reportDir (none if ""). It touches
// no *testing.T, so that the matrix runs many at once (matrixParallel).
func runBinary(bin, name, reportDir, srcPW, dstPW string, args ...string) step {
	st := step{name: name}
	if reportDir != "" {
		st.report = filepath.Join(reportDir, strings.ReplaceAll(name, " ", "-")+".json")
		args = append(args, "--report", st.report)
	}
	cmd, cancel := boundedCmd(name, bin, args...)
	defer cancel()
	cmd.Env = append(os.Environ(), "MAILFERRY_SRC_PASSWORD="+srcPW, "MAILFERRY_DST_PASSWORD="+dstPW)
	out, err := cmd.CombinedOutput()
	st.out = string(out)
	if cmd.ProcessState == nil {
		st.err = err.Error()
		return st
	}
	st.code = cmd.ProcessState.ExitCode()
	return st
}

// checkSteps checks that each run exited 0 and copied what it should (an
// entry -n of copied means "some but not all of n": the rerun after a kill
// in the middle of a copy).
func checkSteps(t *testing.T, what string, steps []step, copied []int) {
	t.Helper()
	for i, st := range steps {
		if st.err != "" || st.code != 0 {
			t.Fatalf("%s, %s: exit %d %s\n%s", what, st.name, st.code, st.err, st.out)
		}
		r := readReport(t, st.report)
		ok, want := r.Totals.Copied == copied[i], fmt.Sprint(copied[i])
		if copied[i] < 0 {
			ok, want = r.Totals.Copied >= 1 && r.Totals.Copied < -copied[i], fmt.Sprint("1 to ", -copied[i]-1)
		}
		if !ok || r.Totals.Failed != 0 {
			t.Errorf("%s, %s: copied %d, failed %d; want %s, 0\n%s", what, st.name, r.Totals.Copied, r.Totals.Failed, want, st.out)
		}
	}
}

// leg is one copy into a server: from a source URL into login on dst.
type leg struct {
	what       string
	src, srcPW string
	srcTLSNone bool
	dst        *servertest.Server
	login      string
	from       map[string][]stored // what the source serves
	folders    []string
	messages   int
}

// exec kills a first run once the destination has stored a message (its
// answer held by appendHold), reruns to the end, reruns with the same state
// and with a fresh state directory; check checks the outcome.
func (l leg) exec(bin, tmp string) []step {
	hold, err := newAppendHold(l.dst.IMAPAddr())
	if err == nil {
		err = os.MkdirAll(tmp, 0o700)
	}
	if err != nil {
		return []step{{name: "run killed mid-copy", err: err.Error()}}
	}
	defer hold.close()
	dstPW := l.dst.Users[l.login]
	states := []string{filepath.Join(tmp, "state"), filepath.Join(tmp, "fresh-state")}
	args := func(state string) []string {
		a := []string{"migrate", l.src, loginURL(l.login, hold.Addr()), "--dst-tls", "none",
			"--state-dir", state, "--progress", "never"}
		if l.srcTLSNone {
			a = append(a, "--src-tls", "none")
		}
		return a
	}
	// One folder at a time, so that the kill comes with folders still to copy.
	if st := killMidCopy(bin, hold, l.srcPW, dstPW, append(args(states[0]), "--jobs", "1")); st.err != "" {
		return []step{st}
	}
	var steps []step
	for i, name := range []string{"rerun after SIGKILL", "rerun", "fresh-state rerun"} {
		steps = append(steps, runBinary(bin, name, tmp, l.srcPW, dstPW, args(states[i/2])...))
	}
	return steps
}

// check: the rerun after the kill copied what had not landed (at least
// one message had: its APPEND was answered OK; at least one had not: the
// kill came in the first folder), the reruns copied 0, and the
// destination holds each message exactly once, as the source served it
// but for the destination's own change.
func (l leg) check(t *testing.T, steps []step) {
	t.Helper()
	checkSteps(t, l.what, steps, []int{-l.messages, 0, 0})
	holds(t, l.what, l.dst, l.login, l.from, l.folders)
}

// startChild starts the mailferry binary with args and env added to this
// process's environment, its output collected in out; done receives its
// exit once it ends.
func startChild(bin string, args []string, env ...string) (cmd *exec.Cmd, out *bytes.Buffer, done chan error, err error) {
	cmd, cancel := boundedCmd(strings.Join(args, " "), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, nil, nil, err
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait(); cancel() }()
	return cmd, out, done, nil
}

// killMidCopy starts the binary and kills it with SIGKILL as soon as the
// proxy holds the answer to its first APPEND.
func killMidCopy(bin string, hold *appendHold, srcPW, dstPW string, args []string) step {
	st := step{name: "run killed mid-copy"}
	cmd, out, done, err := startChild(bin, args, "MAILFERRY_SRC_PASSWORD="+srcPW, "MAILFERRY_DST_PASSWORD="+dstPW)
	if err != nil {
		st.err = err.Error()
		return st
	}
	select {
	case <-hold.held:
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	case err := <-done:
		st.err = fmt.Sprintf("the run ended (%v) before any APPEND was answered", err)
	case <-time.After(60 * time.Second):
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
		st.err = "no APPEND answered within 60 s"
	}
	hold.release()
	st.out = out.String()
	return st
}

// matrixResults collects what the legs saw, for the README's table.
type matrixResults struct {
	mu      sync.Mutex
	changes map[servertest.Kind][]string // what the server does to what it stores
	pop3    map[servertest.Kind][]string // what its POP3 does beyond that
	done    map[string]bool              // legs that passed
}

func (r *matrixResults) passed(leg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done[leg] = true
}

// matrixJob is one leg: exec runs the mailferry binary (many jobs at once:
// most of a leg is waiting, three seconds of it for the rerun after the
// kill, see migrate.Settle), check then looks at the servers in a subtest.
type matrixJob struct {
	name  string
	exec  func(bin, tmp string) []step
	check func(t *testing.T, steps []step)
}

// matrixParallel is how many legs run the binary at once.
const matrixParallel = 8

func TestCompatibilityMatrix(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: starts six servers and runs 45 legs")
	}
	began := time.Now()
	nodes := map[servertest.Kind]*servertest.Server{}
	var missing []string
	for _, kind := range matrixKinds {
		if kind != dovecotKind && kind != dovecotDotKind {
			if err := servertest.Available(kind); err != nil {
				t.Logf("leaving %s out: %v", kind, err)
				missing = append(missing, string(kind))
				continue
			}
		}
		nodes[kind] = startMatrixNode(t, kind)
	}
	res := &matrixResults{changes: map[servertest.Kind][]string{}, pop3: map[servertest.Kind][]string{},
		done: map[string]bool{}}
	jobs := matrixLegs(t, nodes, res)
	bin := binary(t)
	t.Logf("%d servers started and seeded in %v", len(nodes), time.Since(began).Round(time.Millisecond))
	began = time.Now()
	steps := make([][]step, len(jobs))
	tmp := make([]string, len(jobs))
	sem := make(chan struct{}, matrixParallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		tmp[i] = t.TempDir()
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			steps[i] = j.exec(bin, tmp[i])
		}()
	}
	wg.Wait()
	t.Logf("%d legs ran the binary in %v, %d at a time", len(jobs), time.Since(began).Round(time.Millisecond), matrixParallel)
	t.Run("legs", func(t *testing.T) {
		for i, j := range jobs {
			t.Run(j.name, func(t *testing.T) {
				t.Parallel()
				j.check(t, steps[i])
				if !t.Failed() {
					res.passed(j.name)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	if len(missing) > 0 {
		t.Logf("the README's compatibility table is not checked: %s not installed", strings.Join(missing, ", "))
		return
	}
	checkCompatTable(t, compatTable(t, res))
}

// matrixLegs seeds the sources and returns every leg: each server into
// each other, each archived (Maildir, mbox) and restored, and POP3 from
// Dovecot, Cyrus and Courier.
func matrixLegs(t *testing.T, nodes map[servertest.Kind]*servertest.Server, res *matrixResults) []matrixJob {
	// What each source serves: "src" (and "srcflat") seeded once.
	atSrc := map[servertest.Kind]map[string][]stored{}
	atFlat := map[servertest.Kind]map[string][]stored{}
	for kind, s := range nodes {
		msgs := setFor(kind)
		seedAs(t, s, s.User, msgs)
		atSrc[kind] = contentOf(t, s, s.User, setFolders(msgs))
		res.changes[kind] = observedChanges(t, kind, msgs, atSrc[kind])
		if kind != servertest.Mailutils && nodes[servertest.Mailutils] != nil {
			flat := setFor(servertest.Mailutils)
			seedAs(t, s, matrixLogin(kind, "srcflat"), flat)
			atFlat[kind] = contentOf(t, s, matrixLogin(kind, "srcflat"), setFolders(flat))
		}
	}
	var jobs []matrixJob
	for _, a := range matrixKinds {
		for _, b := range matrixKinds {
			if a == b || nodes[a] == nil || nodes[b] == nil {
				continue
			}
			src, dst := nodes[a], nodes[b]
			login, from := src.User, atSrc[a]
			if b == servertest.Mailutils && a != servertest.Mailutils {
				login, from = matrixLogin(a, "srcflat"), atFlat[a]
			}
			l := leg{what: string(a) + "->" + string(b), src: loginURL(login, src.IMAPAddr()), srcPW: src.Users[login],
				srcTLSNone: true, dst: dst, login: matrixLogin(b, fromUser(a)), from: from,
				folders: setFolders(setFor(a, b)), messages: len(setFor(a, b))}
			jobs = append(jobs, matrixJob{l.what, l.exec, l.check})
		}
	}
	for _, kind := range matrixKinds {
		for _, format := range []string{"maildir", "mbox"} {
			if nodes[kind] != nil {
				jobs = append(jobs, archiveJob(nodes[kind], format, atSrc[kind]))
			}
		}
	}
	for _, kind := range []servertest.Kind{dovecotKind, servertest.Cyrus, servertest.Courier} {
		if nodes[kind] != nil {
			jobs = append(jobs, pop3Job(t, nodes[kind], res))
		}
	}
	return jobs
}

// archiveJob archives the source user of s in format: a first run killed
// with SIGKILL once the archive holds a message (killArchive), a rerun to
// the end, a rerun and a fresh-state rerun copying 0; the archive verifies
// and its manifest lists exactly the bytes the source serves, each once.
// Then it restores the archive into a user of its own on s (a leg).
func archiveJob(s *servertest.Server, format string, atSrc map[string][]stored) matrixJob {
	msgs := setFor(s.Kind)
	restore := leg{what: "restore from " + format, dst: s, login: matrixLogin(s.Kind, "restore"+format),
		from: atSrc, folders: setFolders(msgs), messages: len(msgs)}
	exec := func(bin, tmp string) []step {
		dir := filepath.Join(tmp, "archive")
		restore.src = format + ":" + dir
		// The source behind a slow link, so that the kill comes between
		// two folders (one folder at a time).
		slow, err := faultproxy.New(s.IMAPAddr(), faultproxy.Faults{Latency: 20 * time.Millisecond})
		if err != nil {
			return []step{{name: "run killed mid-copy", err: err.Error()}}
		}
		defer slow.Close()
		pw := s.Users[s.User]
		args := func(state string) []string {
			return []string{"archive", loginURL(s.User, slow.Addr()), dir, "--format", format, "--src-tls", "none",
				"--state-dir", filepath.Join(tmp, state), "--progress", "never"}
		}
		if st := killArchive(bin, dir, pw, append(args("s"), "--jobs", "1")); st.err != "" {
			return []step{st}
		}
		var steps []step
		for i, name := range []string{"archive after SIGKILL", "archive rerun", "archive fresh-state rerun"} {
			steps = append(steps, runBinary(bin, name, tmp, pw, "", args([]string{"s", "s", "fresh"}[i])...))
		}
		verify := runBinary(bin, "verify", "", "", "", "verify", dir)
		return append(append(steps, verify), restore.exec(bin, filepath.Join(tmp, "restore"))...)
	}
	check := func(t *testing.T, steps []step) {
		checkSteps(t, "archive", steps[:3], []int{-len(msgs), 0, 0})
		if v := steps[3]; v.code != 0 || v.err != "" {
			t.Errorf("verify after the kill and the reruns: exit %d %s\n%s", v.code, v.err, v.out)
		}
		var want []string
		for _, ms := range atSrc {
			for _, m := range ms {
				want = append(want, sha(m.raw))
			}
		}
		dir := filepath.Join(filepath.Dir(steps[0].report), "archive")
		got := manifestSHA256(t, dir)
		sort.Strings(want)
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s archive of %s holds\n%v\nwant\n%v", format, s.Kind, got, want)
		}
		restore.check(t, steps[4:])
	}
	return matrixJob{string(s.Kind) + "->" + format + "->" + string(s.Kind), exec, check}
}

// killArchive starts an archive run and kills it with SIGKILL as soon as
// the archive's manifest lists a message.
func killArchive(bin, dir, srcPW string, args []string) step {
	st := step{name: "run killed mid-copy"}
	cmd, out, done, err := startChild(bin, args, "MAILFERRY_SRC_PASSWORD="+srcPW)
	if err != nil {
		st.err = err.Error()
		return st
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case err := <-done:
			st.err = fmt.Sprintf("the run ended (%v) before the kill\n%s", err, out.String())
			return st
		case <-deadline:
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			st.err = "the archive listed no message within 60 s\n" + out.String()
			return st
		case <-tick.C:
			if b, err := os.ReadFile(filepath.Join(dir, archive.ManifestFile)); err == nil && bytes.Count(b, []byte("\n")) > 0 {
				cmd.Process.Signal(syscall.SIGKILL)
				<-done
				return st
			}
		}
	}
}

// pop3Job archives the "pop" user's INBOX over POP3: a first run killed
// with SIGKILL once the archive holds a message, then a run to the end; the
// archive holds every message once, as IMAP serves it but for what POP3
// itself changes (a final CRLF where the message had none, noted for the
// table); a rerun and a fresh-state rerun copy 0, and it verifies.
func pop3Job(t *testing.T, s *servertest.Server, res *matrixResults) matrixJob {
	login := matrixLogin(s.Kind, "pop")
	var inbox []dovecottest.SeedMessage
	for _, m := range roundTripMessages(s.Kind) {
		m.Folder = "INBOX"
		inbox = append(inbox, m)
	}
	s.Seed(t, login, inbox)
	// A POP3 multi-line answer ends with CRLF "." CRLF: a message whose
	// last line has no CRLF gets one.
	var served [][]byte
	for _, b := range s.Bodies(t, login, "INBOX") {
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			b = append(b, "\r\n"...)
			res.pop3[s.Kind] = []string{"Its POP3 adds a final CRLF where the message had none."}
		}
		served = append(served, b)
	}
	exec := func(bin, tmp string) []step {
		// The server behind a slow link (a few hundred bytes a second), so
		// that the first run has flushed a message (every 2 s) and is
		// still reading the next when it is killed.
		slow, err := faultproxy.New(s.POP3Addr(), faultproxy.Faults{BytesPerSecond: 300})
		if err != nil {
			return []step{{name: "run killed mid-copy", err: err.Error()}}
		}
		defer slow.Close()
		dir := filepath.Join(tmp, "archive")
		args := func(state string) []string {
			return []string{"archive", "pop3://" + url.User(login).String() + "@" + slow.Addr(), dir, "--src-tls", "none",
				"--state-dir", filepath.Join(tmp, state), "--progress", "never"}
		}
		if st := killArchive(bin, dir, s.Users[login], args("s")); st.err != "" {
			return []step{st}
		}
		var steps []step
		for i, name := range []string{"archive after SIGKILL", "rerun", "fresh-state rerun"} {
			steps = append(steps, runBinary(bin, name, tmp, s.Users[login], "", args([]string{"s", "s", "fresh"}[i])...))
		}
		return append(steps, runBinary(bin, "verify", "", "", "", "verify", dir))
	}
	check := func(t *testing.T, steps []step) {
		checkSteps(t, "POP3 archive", steps[:3], []int{-len(inbox), 0, 0})
		if v := steps[3]; v.code != 0 || v.err != "" {
			t.Errorf("verify after the kill and the reruns: exit %d %s\n%s", v.code, v.err, v.out)
		}
		dir := filepath.Join(filepath.Dir(steps[0].report), "archive")
		if got, want := sortedSHA(archivedBodies(t, dir)), sortedSHA(served); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("POP3 archive of %s holds\n%v\nwant what IMAP serves\n%v", s.Kind, got, want)
		}
	}
	return matrixJob{string(s.Kind) + "-pop3", exec, check}
}
