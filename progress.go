package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailferry/mailferry/migrate"
)

// terminalReporter shows one aggregate progress bar (messages, bytes, rate,
// ETA, current folder) on stderr when it is a terminal, and logs warnings
// and failures through slog.
type terminalReporter struct {
	mu    sync.Mutex
	bar   *progressbar.ProgressBar
	log   *slog.Logger
	total int64 // messages the bar goes to
	done  int64 // messages handled so far
	bytes int64
}

func newTerminalReporter(w io.Writer, mode string, log *slog.Logger) *terminalReporter {
	show := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			show = true
		}
	}
	r := &terminalReporter{log: log}
	if show {
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetVisibility(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionSetWidth(24),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

var _ migrate.Reporter = (*terminalReporter)(nil)

// Planned sizes the bar: it counts messages handled (copied, skipped or
// failed) out of all the selected folders hold.
func (r *terminalReporter) Planned(folders, messages int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total = int64(messages)
	if r.bar != nil && messages > 0 {
		r.bar.ChangeMax64(r.total)
	}
}

func (r *terminalReporter) FolderPlanned(folder string, n int, bytes int64) {}

// add counts n messages handled, keeping the bar's maximum above what was handled, for mail that
// arrived after the plan.
func (r *terminalReporter) add(n int64) {
	if r.bar == nil {
		return
	}
	r.done += n
	if r.total > 0 && r.done > r.total {
		r.total = r.done
		r.bar.ChangeMax64(r.total)
	}
	r.bar.Add64(n)
}

func (r *terminalReporter) FolderStarted(folder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("%-24.24s %s", folder, humanBytes(r.bytes)))
	}
	r.log.Debug("copying", "folder", folder)
}

func (r *terminalReporter) MessageCopied(folder string, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += bytes
	if r.bar != nil {
		r.bar.Describe(fmt.Sprintf("%-24.24s %s", folder, humanBytes(r.bytes)))
	}
	r.add(1)
}

func (r *terminalReporter) MessageFailed(f migrate.Failure) {
	r.mu.Lock()
	r.add(1)
	r.mu.Unlock()
	r.clearBar()
	r.log.Warn(failureLine(f))
}

// failureLine names a failed message: its folder, Message-ID and UID (or
// POP3 UIDL), and why.
func failureLine(f migrate.Failure) string {
	var who []string
	if f.MessageID != "" {
		who = append(who, f.MessageID)
	}
	if f.UID != 0 {
		who = append(who, fmt.Sprintf("UID %d", f.UID))
	} else if f.ID != "" {
		who = append(who, f.ID)
	}
	name := "message"
	if len(who) > 0 {
		name += " " + strings.Join(who, " ")
	}
	return fmt.Sprintf("%s: %s failed: %s", f.Folder, name, f.Error)
}

func (r *terminalReporter) FolderDone(fr migrate.FolderReport) {
	r.mu.Lock()
	r.add(int64(fr.Skipped))
	r.mu.Unlock()
	r.log.Debug("folder done", "folder", fr.Source, "copied", fr.Copied, "skipped", fr.Skipped, "failed", fr.Failed)
}

func (r *terminalReporter) Warn(msg string) {
	r.clearBar()
	r.log.Warn(msg)
}

func (r *terminalReporter) clearBar() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Clear()
	}
}

func (r *terminalReporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.Finish()
		r.bar.Clear()
	}
}

// printSummary writes the per-folder table and the totals.
func printSummary(w io.Writer, rep *migrate.Report) {
	// No row ends with a tab: tabwriter would pad the last column with
	// trailing blanks.
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	copied := "COPIED"
	if rep.DryRun {
		copied = "WOULD COPY"
	}
	t := rep.Totals
	// The cutover's columns only when a run changed (or would change) flags
	// or deleted at the destination.
	cut := t.FlagsUpdated > 0 || t.DeletedAtDestination > 0
	cols := func(c migrate.Counts) string {
		if !cut {
			return ""
		}
		return fmt.Sprintf("\t%d\t%d", c.FlagsUpdated, c.DeletedAtDestination)
	}
	head := ""
	if cut {
		head = "\tFLAGS UPDATED\tDELETED AT DEST"
	}
	fmt.Fprintln(tw, "FOLDER\tDESTINATION\tFOUND\t"+copied+"\tSKIPPED\tFAILED\tBYTES"+head)
	for _, f := range rep.Folders {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s%s\n", f.Source, f.Destination, f.Found, f.Copied, f.Skipped, f.Failed, humanBytes(f.Bytes), cols(f.Counts))
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t%s%s\n", t.Found, t.Copied, t.Skipped, t.Failed, humanBytes(t.Bytes), cols(t))
	tw.Flush()
	for _, f := range rep.Folders {
		if f.Note != "" {
			fmt.Fprintf(w, "note: %s: %s\n", f.Source, f.Note)
		}
	}
	if rep.DryRun { // nothing was copied: no time or rate to speak of
		fmt.Fprintf(w, "would copy %s (%s)\n", plural(t.Copied, "message"), humanBytes(t.Bytes))
	} else {
		rate := 0.0
		if rep.DurationSeconds > 0 {
			rate = float64(t.Copied) / rep.DurationSeconds
		}
		fmt.Fprintf(w, "copied %s (%s) in %.1fs, %.0f msg/s\n", plural(t.Copied, "message"), humanBytes(t.Bytes), rep.DurationSeconds, rate)
	}
	printDeletions(w, rep)
	printCutover(w, rep)
}

// printCutover says how many messages got new flags and what
// --sync-deletions removed at the destination (or, in a dry run, would).
func printCutover(w io.Writer, rep *migrate.Report) {
	would := ""
	if rep.DryRun {
		would = "would "
	}
	if n := rep.Totals.FlagsUpdated; n > 0 {
		verb := "updated"
		if rep.DryRun {
			verb = "update"
		}
		fmt.Fprintf(w, "%s%s the flags of %d messages at the destination\n", would, verb, n)
	}
	if n := rep.Totals.GoneAtSource; n > 0 {
		verb := "recorded"
		if rep.DryRun {
			verb = "would record"
		}
		fmt.Fprintf(w, "%s %d messages as gone at the source in the archive's manifest (the archive keeps them)\n", verb, n)
	}
	if n := rep.Totals.MovedAtDestination; n > 0 {
		fmt.Fprintf(w, "moved %d messages between folders at the destination, as they moved at the source\n", n)
	}
	if n := rep.Totals.DeletedAtDestination; n > 0 {
		verb := "deleted"
		if rep.DryRun {
			verb = "delete"
		}
		how := ""
		if rep.DestMarkedOnly {
			how = ` (only marked \Deleted: the destination has no UIDPLUS, so they stay until the folder is expunged)`
		}
		fmt.Fprintf(w, "%s%s %d messages at the destination that are gone from the source%s\n", would, verb, n, how)
	}
}

// printDeletions says what --delete-source removed (or, in a dry run,
// would remove) and names the first messages it left at the source.
func printDeletions(w io.Writer, rep *migrate.Report) {
	n := rep.Totals.DeletedAtSource
	if n > 0 {
		verb := "deleted"
		if rep.DryRun {
			verb = "would delete"
		}
		how := ""
		if rep.MarkedOnly {
			how = ` (only marked \Deleted: the source has no UIDPLUS, so they stay until the folder is expunged)`
		}
		fmt.Fprintf(w, "%s %s at the source%s\n", verb, plural(n, "message"), how)
	}
	const show = 10
	for i, k := range rep.Kept {
		if i == show {
			fmt.Fprintf(w, "kept at the source: %d more, named in the report\n", len(rep.Kept)-show)
			break
		}
		id := k.MessageID
		if id == "" {
			id = "(no Message-ID)"
		}
		where := fmt.Sprintf("UID %d", k.UID)
		if k.UID == 0 {
			where = k.ID // POP3: the UIDL
		}
		fmt.Fprintf(w, "kept at the source: %s %s %s: the destination holds a message with its key that mailferry did not store\n", k.Folder, where, id)
	}
}

// plural is "1 message", "2 messages", "0 messages".
func plural[N ~int | ~int64](n N, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
