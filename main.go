// Command mailferry moves and keeps mail: IMAP, POP3, Maildir and mbox in,
// IMAP, Maildir and mbox out, byte for byte, with folders, flags and dates,
// never losing or doubling a message.
//
// This file parses the command line and maps errors to exit codes; the
// engine lives in package migrate, the local stores in package archive.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/migrate"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (CLI.md). Mapped from errors in exitCode and nowhere else.
const (
	exitOK        = 0   // everything selected is at the destination
	exitError     = 1   // stopped by an error; a rerun resumes safely
	exitUsage     = 2   // usage error: nothing was done
	exitFailures  = 3   // finished, but some messages failed (named in the report)
	exitInterrupt = 130 // stopped by Ctrl-C or SIGTERM; a rerun resumes
)

// errSomeFailed says a run finished with failed messages.
var errSomeFailed = errors.New("some messages failed")

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says otherwise.
// Bodies stream and the spool holds a few MB in flight, so the live heap is
// small; the limit makes the collector return garbage before it doubles
// the process (peak RSS is to stay under 40 MB whatever the message sizes).
// It is soft: a larger live heap (a huge --dedup account index) still fits,
// at the price of more collections. The live heap of a first copy peaks
// at about 14 MB (200k IMAP->IMAP, GODEBUG=gctrace=1); 24 MB leaves the
// collector room enough that it runs about every 30 ms there.
const memoryLimit = 24 << 20

// When the heap cannot fit under memoryLimit, the limit makes way. A POP3
// maildrop of 60,000 messages is listed, decided and tallied whole, and
// the live heap and the runtime's own memory (metadata, stacks, the unused
// ends of spans: 7-9 MB) come to 31-36 MB while it is copied, 33-49 MB for
// a rerun's ledger and archive manifest. Under the fixed limit the
// collector then ran after every few hundred kB allocated without freeing
// anything (900 collections for that copy): at 200k, POP3->Maildir took
// 9-12 s of CPU where it took 4 s with the limit out of the way, and
// peaked at 47-48 MB all the same. With this, 4.6-4.7 s of CPU against
// 7.2-7.3 s, and the same peak (an A/B on a tmpfs: examples/bench/RESULTS.md).
//
// Other runs come over the limit too, and must stay under 40 MB: a first
// IMAP copy on a slow link for one 50 ms sample at a time (where two
// spooled batches are in flight), never for two in a row; a delta pass
// over the million-message set for seconds, holding a large folder's
// ledgers (37-40 MB at its peak), but waiting on the servers: 1.06 s of
// CPU in 7.73 s. Given room there, it peaked at 41.4 MB. So the limit
// moves only when the heap stayed over it for heapOverTicks samples in a
// row, in which the collector ran at least heapOverCycles times and took
// heapOverGC of CPU: a copy the collector slows down. (That CPU includes
// what the collector takes on the runtime's idle processors: most of it,
// in that POP3 copy, whose goroutines wait on the server and the disk; on
// two cores those are not idle, the servers run on them.) It then leaves
// heapRoom above what is in use, and comes back to memoryLimit once that
// fits again.
const (
	heapTick       = 50 * time.Millisecond
	heapOverTicks  = 5
	heapOverCycles = 10
	heapOverGC     = 0.1 // seconds of CPU in the heapOverTicks-1 intervals: half a core
	heapRoom       = 8 << 20
)

// heapUse is what keepHeapRoom reads of the runtime's memory.
var heapUse = []metrics.Sample{
	{Name: "/gc/heap/live:bytes"},                 // marked live by the last collection
	{Name: "/memory/classes/total:bytes"},         // all the runtime mapped
	{Name: "/memory/classes/heap/released:bytes"}, // of which given back to the OS
	{Name: "/memory/classes/heap/objects:bytes"},  // of which objects, live or not
	{Name: "/memory/classes/heap/free:bytes"},     // of which free, not yet given back
	{Name: "/gc/cycles/total:gc-cycles"},
	{Name: "/cpu/classes/gc/total:cpu-seconds"}, // the collector's CPU (an estimate)
}

// heapLimiter decides the soft limit from one sample after another.
type heapLimiter struct {
	set  int64 // the limit as last set
	over int   // samples in a row with the heap over memoryLimit
	// last holds the collector's counts at the last heapOverTicks samples
	// (n taken so far, the oldest at n%heapOverTicks once n reaches that).
	last [heapOverTicks]struct {
		cycles uint64
		cpu    float64
	}
	n int
}

// step takes one sample: used is the live heap with the runtime's own
// memory (free pages left out: counted, they would raise the limit that
// makes the runtime give them back), cycles the collections so far and
// gcCPU the collector's CPU seconds so far. It returns the limit to set,
// or 0 to leave it.
func (h *heapLimiter) step(used int64, cycles uint64, gcCPU float64) int64 {
	if used <= memoryLimit {
		h.over = 0
	} else {
		h.over++
	}
	oldest := h.last[(h.n+1)%heapOverTicks] // heapOverTicks-1 samples before this one
	h.last[h.n%heapOverTicks].cycles, h.last[h.n%heapOverTicks].cpu = cycles, gcCPU
	h.n++
	want := int64(memoryLimit)
	switch {
	case h.set > memoryLimit && used > memoryLimit-heapRoom/4:
		want = used + heapRoom // raised: follow what is in use
	case h.over >= heapOverTicks && cycles-oldest.cycles >= heapOverCycles && gcCPU-oldest.cpu >= heapOverGC:
		want = used + heapRoom
	}
	if want == h.set || want > memoryLimit && h.set > memoryLimit && max(want-h.set, h.set-want) < heapRoom/4 {
		return 0
	}
	h.set = want
	return want
}

// keepHeapRoom samples the runtime's memory every heapTick until ctx ends
// and sets the soft limit as heapLimiter says.
func keepHeapRoom(ctx context.Context) {
	h := heapLimiter{set: memoryLimit}
	tick := time.NewTicker(heapTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(heapUse)
		for _, s := range heapUse {
			if s.Value.Kind() == metrics.KindBad {
				return // not in this runtime
			}
		}
		u := func(i int) uint64 { return heapUse[i].Value.Uint64() }
		live, mapped, released, objects, free, cycles := u(0), u(1), u(2), u(3), u(4), u(5)
		other := uint64(0)
		if held := released + objects + free; mapped > held {
			other = mapped - held
		}
		if limit := h.step(int64(live+other), cycles, heapUse[6].Value.Float64()); limit > 0 {
			debug.SetMemoryLimit(limit)
		}
	}
}

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
		go keepHeapRoom(ctx)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal stops the run between two messages, keeping and
		// counting what was stored; a second one stops it at once (what was
		// in flight is found again by the next run).
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "mailferry: interrupted again: stopped at once; run the same command again to resume")
		os.Exit(exitInterrupt)
	}()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, os.Getenv, stdin, stdout, stderr)
}

// runEnv is run with the environment variables getenv gives: tests pass
// their own, so that they can run in parallel.
func runEnv(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &environment{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := newRootCommand(env)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command ") {
		err = unknownCommand(root, err) // cobra's own, for a mistyped command
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, migrate.ErrInterrupted) {
		err = migrate.ErrInterrupted // stopped before or outside the engine
	}
	code := exitCode(err)
	if err != nil && !errors.Is(err, errSomeFailed) {
		fmt.Fprintln(stderr, "mailferry: "+oneLine(err.Error()))
	}
	return code
}

// exitCode is the one place errors become exit codes.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errSomeFailed):
		return exitFailures
	case errors.Is(err, migrate.ErrInterrupted):
		return exitInterrupt
	case errors.As(err, &ue), errors.Is(err, migrate.ErrUsage):
		return exitUsage
	default:
		return exitError
	}
}

// usageError marks errors of the command line itself (cobra's, and ours).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func oneLine(s string) string {
	out := []rune{}
	for _, r := range s {
		if r == '\n' || r == '\r' {
			r = ' '
		}
		out = append(out, r)
	}
	return string(out)
}

// environment is what commands may touch of the outside world.
type environment struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

func newRootCommand(env *environment) *cobra.Command {
	root := &cobra.Command{
		Use:   "mailferry",
		Short: "Move and keep mail: IMAP, POP3, Maildir and mbox, byte for byte",
		Long: `mailferry copies every folder and message from one mail account or archive to
another, keeping folders, flags and dates, and never copying a message twice.

Endpoints: imap://user@host[:port] (STARTTLS), imaps://user@host[:port],
pop3://user@host[:port] (STLS), pop3s://user@host[:port], maildir:PATH and
mbox:PATH (a directory of mbox files, or one FILE.mbox). Any can be a SOURCE;
imap, imaps, maildir and mbox can be a DEST.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       versionLine(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageTemplate(usageTemplate)
	setHelp(root, `  mailferry demo
  mailferry folders imaps://alice@old.example
  mailferry migrate imaps://alice@old.example imaps://alice@new.example
  mailferry archive imaps://alice@mail.example ~/mail-archive
  mailferry verify ~/mail-archive`, exitHelpRoot)
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newMigrateCommand(env),
		newArchiveCommand(env),
		newVerifyCommand(env),
		newFoldersCommand(env),
		newDemoCommand(env),
		newVersionCommand(env),
	)
	return root
}

func newVersionCommand(env *environment) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Long:  "version prints the module version, the commit the binary was built from\nand the Go version.",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(env.stdout, versionLine())
			return nil
		},
	}
	setHelp(cmd, `  mailferry version
  mailferry --version`, exitHelpVersion)
	return cmd
}

// versionLine is what version and --version print: the version given at
// build time (-X main.version) or else the module version, and the commit
// the binary was built from (runtime/debug.ReadBuildInfo).
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

func formatVersion(v string, bi *debug.BuildInfo) string {
	if bi == nil {
		return "mailferry " + v
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, when string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	line := "mailferry " + v
	if rev != "" {
		line += ", commit " + rev
		if when != "" {
			line += " (" + when + ")"
		}
		if modified {
			line += " with uncommitted changes"
		}
	}
	if bi.GoVersion != "" {
		line += ", built with " + bi.GoVersion
	}
	return line
}

// noArgs and exactArgs are cobra's, with their errors marked as usage errors.
func noArgs(cmd *cobra.Command, args []string) error { return exactArgs(0)(cmd, args) }

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return argsError(cmd, args)
		}
		return nil
	}
}
