package main

// Fault tests: migrations Dovecot('/') -> Dovecot('.') where both the
// source and the destination connections go through a faultproxy that cuts
// them at random byte counts (in greetings, command lines, FETCH literals,
// APPEND and MULTIAPPEND literals). One run must absorb the cuts (the
// engine's per-folder reconnect and resume) and leave the destination equal
// to the source: no message lost, none doubled.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/dovecottest"
	"github.com/mailferry/mailferry/migrate/faultproxy"
)

const (
	faultSeeds = 20
	// faultConcurrent runs this many seeds at once: most of a run's time is
	// the engine's reconnect backoff (1 s, 2 s, ...), not CPU.
	faultConcurrent = 10
	// faultRunTimeout bounds one migration: a hang is a failure, not a
	// test binary killed after 10 minutes.
	faultRunTimeout = 150 * time.Second
)

// faultCorpus is a third of the dev corpus (every third message, so every
// source project is in it) and the smallest message larger than the
// engine's MULTIAPPEND spool (512 KiB), which takes the streamed APPEND path
// instead: 330 messages, 3.4 MB, two of them streamed (570 kB and 1.2 MB).
func faultCorpus(t *testing.T) []dovecottest.SeedMessage {
	t.Helper()
	all := testMessages(t, 0)
	var out []dovecottest.SeedMessage
	big := -1
	for i, m := range all {
		if len(m.Body) > 512<<10 && (big < 0 || len(m.Body) < len(all[big].Body)) {
			big = i
		}
	}
	for i, m := range all {
		if i%3 == 0 || i == big {
			out = append(out, m)
		}
	}
	return out
}

// faultSource starts the source Dovecot and seeds it. The migrations only
// read it (BODY.PEEK), so the seeds share it; faultSourceUnchanged checks
// that it was not changed.
func faultSource(t *testing.T, msgs []dovecottest.SeedMessage) (*dovecottest.Server, dovecottest.Snapshot) {
	t.Helper()
	src := dovecottest.Start(t, dovecottest.Options{Separator: '/', SpecialUse: true})
	src.Seed(t, "alice", msgs)
	return src, src.Snapshot(t, "alice")
}

func faultSourceUnchanged(t *testing.T, src *dovecottest.Server, before dovecottest.Snapshot) {
	t.Helper()
	if !sameSnapshot(before, src.Snapshot(t, "alice")) {
		t.Error("the migrations changed the source")
	}
}

func faultBytes(msgs []dovecottest.SeedMessage) int64 {
	var n int64
	for _, m := range msgs {
		n += int64(len(m.Body))
	}
	return n
}

// faultRun is one migration through two proxies into a fresh destination.
type faultRun struct {
	src, dst           *dovecottest.Server
	srcProxy, dstProxy *faultproxy.Proxy
	state, report      string
	pwSrc, pwDst       string
	rep                migrate.Report // after faultOnce, of a run that exited 0
}

func newFaultRun(t *testing.T, src *dovecottest.Server, srcFaults, dstFaults faultproxy.Faults) *faultRun {
	t.Helper()
	r := &faultRun{src: src, dst: dovecottest.Start(t, dovecottest.Options{Separator: '.', SpecialUse: true, SentName: "Sent Items"})}
	var err error
	if r.srcProxy, err = faultproxy.New(src.IMAPAddr(), srcFaults); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.srcProxy.Close() })
	if r.dstProxy, err = faultproxy.New(r.dst.IMAPAddr(), dstFaults); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.dstProxy.Close() })
	dir := t.TempDir()
	r.state, r.report = filepath.Join(dir, "state"), filepath.Join(dir, "report.json")
	// Password files, not MAILFERRY_*_PASSWORD: t.Setenv would forbid
	// running seeds at the same time.
	r.pwSrc, r.pwDst = filepath.Join(dir, "src.pw"), filepath.Join(dir, "dst.pw")
	if err := os.WriteFile(r.pwSrc, []byte(src.Users["alice"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.pwDst, []byte(r.dst.Users["alice"]+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// migrate runs mailferry in-process through the proxies, bounded in time.
func (r *faultRun) migrate(t *testing.T, extra ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	args := append([]string{"migrate",
		"imap://alice@" + r.srcProxy.Addr(), "imap://alice@" + r.dstProxy.Addr(),
		"--src-tls", "none", "--dst-tls", "none",
		"--src-password-file", r.pwSrc, "--dst-password-file", r.pwDst,
		"--state-dir", r.state, "--report", r.report, "--progress", "never"}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), faultRunTimeout)
	defer cancel()
	var out, errb strings.Builder
	start := time.Now()
	code = run(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String(), time.Since(start)
}

// check compares the destination with the source snapshot: in every
// folder the same messages (hash, flags, date) as multisets, so a loss or a
// duplicate shows, nothing else anywhere, and the same total. It reports
// each difference and says whether there was none (whatever else failed
// the test, e.g. the race detector).
func (r *faultRun) check(t *testing.T, before dovecottest.Snapshot, nmsgs int) (migrate.Report, bool) {
	t.Helper()
	if _, err := os.Stat(r.report); err != nil {
		t.Errorf("no report: %v", err)
		return migrate.Report{}, false
	}
	rep := readReport(t, r.report)
	after := r.dst.Snapshot(t, "alice")
	problems := faultDiff(before, after, rep)
	if n := total(after); n != nmsgs {
		problems = append(problems, fmt.Sprintf("the destination holds %d messages, want exactly %d", n, nmsgs))
	}
	if rep.Totals.Failed != 0 {
		problems = append(problems, fmt.Sprintf("the report names %d failed messages", rep.Totals.Failed))
	}
	for _, p := range problems {
		t.Error(p)
	}
	return rep, len(problems) == 0
}

// faultDiff is sameContent (e2e_test.go) returning its findings.
func faultDiff(src, dst dovecottest.Snapshot, rep migrate.Report) []string {
	dest := map[string]string{}
	for _, f := range rep.Folders {
		dest[f.Source] = f.Destination
	}
	var out []string
	seen := map[string]bool{}
	for name, msgs := range src {
		dname, ok := dest[name] // the source separator is "/", as in the report
		if !ok {
			if len(msgs) > 0 {
				out = append(out, fmt.Sprintf("source folder %q with %d messages is not in the report", name, len(msgs)))
			}
			continue
		}
		seen[dname] = true
		if got, want := keys(dst[dname]), keys(msgs); !slices.Equal(got, want) {
			out = append(out, fmt.Sprintf("folder %q -> %q: destination has %d messages, source %d; first difference: %s",
				name, dname, len(got), len(want), firstDiff(want, got)))
		}
	}
	for name, msgs := range dst {
		if !seen[name] && len(msgs) > 0 {
			out = append(out, fmt.Sprintf("destination folder %q holds %d messages no source folder maps to", name, len(msgs)))
		}
	}
	sort.Strings(out)
	return out
}

// events describes what a proxy did, one line per fault.
func events(name string, p *faultproxy.Proxy) string {
	var b strings.Builder
	for _, e := range p.Events() {
		fmt.Fprintf(&b, "  %s %s\n", name, e)
	}
	return b.String()
}

// engineWarnings are the reconnect lines the engine logged.
func engineWarnings(stderr string) string {
	var b strings.Builder
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "trying again") {
			if len(l) > 300 {
				l = l[:300] + "…"
			}
			b.WriteString("  " + l + "\n")
		}
	}
	return b.String()
}

// faultSmallCorpus is every tenth message of the corpus (about 100, 0.5 MB),
// for the tests that aim one fault at one place.
func faultSmallCorpus(t *testing.T) []dovecottest.SeedMessage {
	t.Helper()
	var out []dovecottest.SeedMessage
	for i, m := range testMessages(t, 0) {
		if i%10 == 0 {
			out = append(out, m)
		}
	}
	return out
}

// faultOnce runs one migration of msgs through proxies with the given
// faults into a fresh destination and checks that it exits 0 with the
// destination equal to the source. It returns the run for more checks.
func faultOnce(t *testing.T, src *dovecottest.Server, before dovecottest.Snapshot, nmsgs int,
	srcF, dstF faultproxy.Faults, extra ...string) (*faultRun, time.Duration) {
	t.Helper()
	r := newFaultRun(t, src, srcF, dstF)
	code, out, errOut, took := r.migrate(t, extra...)
	_, srcCuts := r.srcProxy.Stats()
	_, dstCuts := r.dstProxy.Stats()
	t.Logf("exit %d in %v, %d source and %d destination cuts\n%s%s%s", code, took.Round(time.Millisecond),
		srcCuts, dstCuts, events("source", r.srcProxy), events("destination", r.dstProxy), engineWarnings(errOut))
	if code != 0 {
		t.Errorf("exit %d: one run did not absorb the fault\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		return r, took // the destination is incomplete: no use comparing
	}
	r.rep, _ = r.check(t, before, nmsgs)
	return r, took
}

// TestFaultCutDuringStartup cuts the run's first connection (the one the
// engine lists folders on before any worker starts) on each side, once:
// in the server greeting, and just before the server's first STATUS
// answer of the folder listing. A reconnect must absorb it, as it does for
// a cut inside a folder.
func TestFaultCutDuringStartup(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	cases := []struct {
		name string
		side string // "source" or "destination"
		cut  faultproxy.Cut
	}{
		{"source greeting", "source", faultproxy.Cut{Min: 10, Max: 10}},
		{"source folder list", "source", faultproxy.Cut{Before: []byte("* STATUS ")}},
		{"destination greeting", "destination", faultproxy.Cut{Min: 10, Max: 10}},
		{"destination folder list", "destination", faultproxy.Cut{Before: []byte("* STATUS ")}},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.name, func(t *testing.T) { faultStartupCase(t, src, before, len(msgs), c.side, c.cut) })
		}()
	}
	wg.Wait()
	faultSourceUnchanged(t, src, before)
}

func faultStartupCase(t *testing.T, src *dovecottest.Server, before dovecottest.Snapshot, nmsgs int, side string, cut faultproxy.Cut) {
	cut.Dir, cut.P, cut.FirstConns, cut.MaxCuts = faultproxy.ServerToClient, 1, 1, 1
	var srcF, dstF faultproxy.Faults
	if side == "source" {
		srcF.CutAfterBytes = cut
	} else {
		dstF.CutAfterBytes = cut
	}
	r, _ := faultOnce(t, src, before, nmsgs, srcF, dstF)
	_, sc := r.srcProxy.Stats()
	_, dc := r.dstProxy.Stats()
	if sc+dc != 1 {
		t.Errorf("%d cuts happened, want the 1 aimed at", sc+dc)
	}
}

// TestFaultAppendAnswerLost loses the server's answer to APPENDs it has
// carried out (the connection is cut just before "OK [APPENDUID"), three
// times: the messages are at the destination, the engine does not know it.
// The resumed folder must find them there and not copy them again.
func TestFaultAppendAnswerLost(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	dstF := faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Before: []byte("OK [APPENDUID"), Dir: faultproxy.ServerToClient, P: 1, MaxCuts: 3}}
	r, _ := faultOnce(t, src, before, len(msgs), faultproxy.Faults{}, dstF, "--jobs", "2")
	if _, cuts := r.dstProxy.Stats(); cuts != 3 {
		t.Errorf("%d answers lost, want 3", cuts)
	}
	// The messages whose answer was lost were found at the destination:
	// this run copied them (counts_test.go), none is "skipped".
	if !t.Failed() && (r.rep.Totals.Copied != len(msgs) || r.rep.Totals.Skipped != 0) {
		t.Errorf("the report says copied %d, skipped %d; want copied %d, skipped 0", r.rep.Totals.Copied, r.rep.Totals.Skipped, len(msgs))
	}
	faultSourceUnchanged(t, src, before)
}

// TestFaultSourceCutMidLiteral cuts the source connection once, in the
// middle of the BODY[] literal of the only message. The destination's
// spool then reads a short body, the fetch is abandoned, and the folder is
// resumed. Under -race this shows a data race in the abandoned FETCH (see
// the report of the fault tests).
func TestFaultSourceCutMidLiteral(t *testing.T) {
	t.Parallel()
	var msg dovecottest.SeedMessage
	for _, m := range testMessages(t, 0) {
		if len(m.Body) > 100<<10 && len(m.Body) <= 512<<10 {
			msg = m
			break
		}
	}
	if msg.Body == nil {
		t.Skip("no message between 100 and 512 KiB in the corpus")
	}
	msg.Folder = "INBOX"
	msgs := []dovecottest.SeedMessage{msg}
	src, before := faultSource(t, msgs)
	// The literal starts a few kB into the connection (greeting, LOGIN,
	// LIST, SELECT, the message list): half the message in is mid-literal.
	srcF := faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Min: int64(len(msg.Body)) / 2, Max: int64(len(msg.Body)) / 2,
		Dir: faultproxy.ServerToClient, P: 1, FirstConns: 1, MaxCuts: 1}}
	r, _ := faultOnce(t, src, before, 1, srcF, faultproxy.Faults{}, "--jobs", "1")
	if _, cuts := r.srcProxy.Stats(); cuts != 1 {
		t.Errorf("%d cuts, want 1", cuts)
	}
}

// TestFaultStallShorterThanTimeouts stops both sides' first connections
// for 2 s at a random point: shorter than any timeout, so the run must
// simply wait and go on, with nothing lost or doubled. (A connection that
// stops for good is TestFaultBlackholedConnection.)
func TestFaultStallShorterThanTimeouts(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	n := faultBytes(msgs)
	const stall = 2 * time.Second
	srcF := faultproxy.Faults{Seed: 1, Stall: faultproxy.Stall{
		Min: 1, Max: n / 4, Dir: faultproxy.ServerToClient, P: 1, For: stall, FirstConns: 2}}
	dstF := faultproxy.Faults{Seed: 2, Stall: faultproxy.Stall{
		Min: 1, Max: n / 4, Dir: faultproxy.ClientToServer, P: 1, For: stall, FirstConns: 2}}
	r, took := faultOnce(t, src, before, len(msgs), srcF, dstF, "--jobs", "2")
	stalls := len(r.srcProxy.Events()) + len(r.dstProxy.Events())
	if stalls == 0 {
		t.Error("no connection stalled")
	}
	if took < stall {
		t.Errorf("the run took %v with %d stalls of %v", took, stalls, stall)
	}
	faultSourceUnchanged(t, src, before)
}

// TestFaultBlackholedConnection stops the source connection for good in
// the middle of a FETCH literal (the server is still there; no byte comes).
// The engine must give up on the connection, reconnect and finish within
// faultRunTimeout (150 s). Today it takes 5 min 1 s: the engine sets no
// timeout of its own on go-imap connections, and go-imap waits 5 min for
// the rest of a literal. Too slow for CI either way: it runs only with
// MAILFERRY_SLOW_FAULTS=1.
func TestFaultBlackholedConnection(t *testing.T) {
	t.Parallel()
	if os.Getenv("MAILFERRY_SLOW_FAULTS") == "" {
		t.Skip("a connection that stops answering is noticed only by go-imap's own timeouts (30 s for a response, " +
			"5 min inside a FETCH literal) and the appender's 60 s: too slow for CI; MAILFERRY_SLOW_FAULTS=1 runs it")
	}
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	n := faultBytes(msgs)
	srcF := faultproxy.Faults{Seed: 3, Stall: faultproxy.Stall{
		Min: n / 4, Max: n / 4, Dir: faultproxy.ServerToClient, P: 1, For: time.Hour, FirstConns: 1}}
	_, took := faultOnce(t, src, before, len(msgs), srcF, faultproxy.Faults{}, "--jobs", "1")
	t.Logf("a black-holed source connection cost %v", took)
}

// TestFaultDeleteSource runs --delete-source migrations with cuts: aimed
// just before the UID EXPUNGE of the delete phase, and at random byte
// counts. Each run must exit 0 with every message at the destination once
// and none left at the source. Whatever happens, nothing may be lost: a
// failed run is followed by a clean rerun, and then the destination must
// hold exactly what the source held.
func TestFaultDeleteSource(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	type variant struct {
		name     string
		src, dst faultproxy.Faults
	}
	variants := []variant{{"cut before UID EXPUNGE", faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Before: []byte("UID EXPUNGE"), Dir: faultproxy.ClientToServer, P: 1, MaxCuts: 1}}, faultproxy.Faults{}}}
	n := faultBytes(msgs)
	for seed := uint64(1); seed <= 4; seed++ {
		variants = append(variants, variant{fmt.Sprintf("seed=%d", seed),
			faultproxy.Faults{Seed: seed, CutAfterBytes: faultproxy.Cut{Min: 1, Max: n / 2, P: 0.8, MaxCuts: 2}},
			faultproxy.Faults{Seed: seed << 32, CutAfterBytes: faultproxy.Cut{Min: 1, Max: n / 2, P: 0.8, MaxCuts: 1}}})
	}
	var wg sync.WaitGroup
	for _, v := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(v.name, func(t *testing.T) {
				src, before := faultSource(t, msgs)
				r := newFaultRun(t, src, v.src, v.dst)
				code, out, errOut, took := r.migrate(t, "--delete-source", "--jobs", "2")
				_, sc := r.srcProxy.Stats()
				_, dc := r.dstProxy.Stats()
				t.Logf("exit %d in %v, %d source and %d destination cuts\n%s%s%s", code, took.Round(time.Millisecond),
					sc, dc, events("source", r.srcProxy), events("destination", r.dstProxy), engineWarnings(errOut))
				if code != 0 {
					t.Errorf("exit %d: one run did not absorb the cuts\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
					// The budgets are spent: a rerun goes through clean.
					if code, out, errOut, _ = r.migrate(t, "--delete-source"); code != 0 {
						t.Fatalf("the clean rerun: exit %d\n%s\n%s", code, out, errOut)
					}
				}
				r.check(t, before, len(msgs))
				if left := total(src.Snapshot(t, "alice")); left != 0 {
					t.Errorf("%d messages left at the source after --delete-source", left)
				}
			})
		}()
	}
	wg.Wait()
}

// TestFaultCutsMigrationIsExact migrates the corpus 20 times, once per seed,
// with each seed cutting source and destination connections at random byte
// counts, with a budget of 3 cuts per run (the engine resumes a folder 5
// times). Every run must exit 0 in one go and copy everything exactly once.
// Seeds 1-20; MAILFERRY_FAULT_SEED=N runs N to N+19 instead, and
// -run 'CutsMigration/seed=N$' (with MAILFERRY_FAULT_SEED=N past 20) just N.
func TestFaultCutsMigrationIsExact(t *testing.T) {
	t.Parallel()
	began := time.Now()
	msgs := faultCorpus(t)
	src, before := faultSource(t, msgs)
	corpusBytes := faultBytes(msgs)
	t.Logf("corpus: %d messages, %d bytes; source ready in %v", len(msgs), corpusBytes, time.Since(began).Round(time.Millisecond))

	type result struct {
		seed               int
		ran                bool
		srcCuts, dstCuts   int
		srcConns, dstConns int
		ok                 bool
		took               time.Duration
		copied, skipped    int
	}
	results := make([]result, faultSeeds)
	sem := make(chan struct{}, faultConcurrent)
	var wg sync.WaitGroup
	first := 1
	if s := os.Getenv("MAILFERRY_FAULT_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &first); err != nil {
			t.Fatalf("MAILFERRY_FAULT_SEED=%q: %v", s, err)
		}
	}
	for i := 0; i < faultSeeds; i++ {
		seed := first + i
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// t.Run from several goroutines at once is allowed; the seeds do
			// not use t.Parallel because -parallel defaults to GOMAXPROCS (2
			// here) and the runs mostly wait out the engine's backoff.
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(seed), 0xfa17))
				jobs := 1 + rng.IntN(4)
				srcBudget := 1 + rng.IntN(2)
				dstBudget := 3 - srcBudget
				srcDir, dstDir := faultproxy.ServerToClient, faultproxy.ClientToServer
				if rng.IntN(3) == 0 {
					srcDir = faultproxy.Both
				}
				if rng.IntN(3) == 0 {
					dstDir = faultproxy.Both
				}
				latency := []time.Duration{0, time.Millisecond, 10 * time.Millisecond}[rng.IntN(3)] // 10 ms: a 20 ms round trip
				// A cut point anywhere in what one worker's connection
				// carries: from its first byte (the greeting) to the end.
				perConn := corpusBytes / int64(jobs)
				srcF := faultproxy.Faults{Seed: uint64(seed), Latency: latency, CutAfterBytes: faultproxy.Cut{
					Min: 1, Max: perConn, Dir: srcDir, P: 0.8, MaxCuts: srcBudget}}
				dstF := faultproxy.Faults{Seed: uint64(seed) << 32, Latency: latency, CutAfterBytes: faultproxy.Cut{
					Min: 1, Max: perConn, Dir: dstDir, P: 0.8, MaxCuts: dstBudget}}
				r := newFaultRun(t, src, srcF, dstF)
				code, out, errOut, took := r.migrate(t, "--jobs", fmt.Sprint(jobs))
				res := result{seed: seed, ran: true, took: took}
				defer func() { results[i] = res }()
				res.srcConns, res.srcCuts = r.srcProxy.Stats()
				res.dstConns, res.dstCuts = r.dstProxy.Stats()
				up, down := r.srcProxy.Traffic()
				dup, ddown := r.dstProxy.Traffic()
				t.Logf("jobs %d, latency %v, budget src %d (%s) dst %d (%s): exit %d in %v; source %d connections, %d cuts, %d/%d bytes up/down; destination %d connections, %d cuts, %d/%d bytes up/down\n%s%s%s",
					jobs, latency, srcBudget, srcDir, dstBudget, dstDir, code, took.Round(time.Millisecond),
					res.srcConns, res.srcCuts, up, down, res.dstConns, res.dstCuts, dup, ddown,
					events("source", r.srcProxy), events("destination", r.dstProxy), engineWarnings(errOut))
				if code != 0 {
					t.Errorf("exit %d after %d source and %d destination cuts; the engine did not absorb them\nstdout:\n%s\nstderr:\n%s",
						code, res.srcCuts, res.dstCuts, out, errOut)
					return
				}
				rep, ok := r.check(t, before, len(msgs))
				res.copied, res.skipped = rep.Totals.Copied, rep.Totals.Skipped
				if ok && rep.Totals.Copied+rep.Totals.Skipped != len(msgs) {
					t.Errorf("the report says %d copied and %d skipped of %d", rep.Totals.Copied, rep.Totals.Skipped, len(msgs))
					ok = false
				}
				res.ok = ok
			})
		}()
	}
	wg.Wait()
	faultSourceUnchanged(t, src, before)

	survived, withCuts, failed, ran := 0, 0, 0, 0
	for _, r := range results {
		if !r.ran {
			continue
		}
		ran++
		n := r.srcCuts + r.dstCuts
		if n > 0 {
			withCuts++
		}
		if r.ok {
			survived += n
		} else {
			failed++
		}
	}
	if withCuts < ran*3/4 {
		t.Errorf("only %d of %d seeds cut a connection: the faults are too weak to test anything", withCuts, ran)
	}
	t.Logf("connection cuts survived: %d (%d seeds, %d with cuts, %d failed; %v)",
		survived, ran, withCuts, failed, time.Since(began).Round(time.Millisecond))
}

// TestFaultServerSaysBYE: the destination sends "* BYE" instead of the
// answer to an APPEND, and the source says BYE in the middle of a FETCH;
// the run reconnects, resumes and ends equal to the source.
func TestFaultServerSaysBYE(t *testing.T) {
	t.Parallel()
	msgs := faultSmallCorpus(t)
	src, before := faultSource(t, msgs)
	bye := []byte("* BYE Server shutting down.\r\n")
	dstF := faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Before: []byte("OK [APPENDUID"), Inject: bye, Dir: faultproxy.ServerToClient, P: 1, MaxCuts: 2}}
	srcF := faultproxy.Faults{CutAfterBytes: faultproxy.Cut{
		Before: []byte("* 5 FETCH"), Inject: bye, Dir: faultproxy.ServerToClient, P: 1, MaxCuts: 1}}
	r, _ := faultOnce(t, src, before, len(msgs), srcF, dstF, "--jobs", "2")
	_, dcuts := r.dstProxy.Stats()
	_, scuts := r.srcProxy.Stats()
	if dcuts+scuts == 0 {
		t.Error("no BYE was sent: the test tested nothing")
	}
	t.Logf("BYE survived: %d from the destination, %d from the source", dcuts, scuts)
	faultSourceUnchanged(t, src, before)
}
