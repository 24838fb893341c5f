package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/mailferry/mailferry/migrate"
)

// terminalReporter shows one progress line (current folder, bar, messages,
// bytes, rate, ETA) on stderr when it is a terminal, and logs warnings and
// failures through slog, clearing the line first.
type terminalReporter struct {
	mu     sync.Mutex
	bar    *progressLine // nil: no progress shown
	log    *slog.Logger
	total  int64 // messages the bar goes to
	done   int64 // messages handled so far
	bytes  int64
	folder string
}

func newTerminalReporter(w io.Writer, mode string, log *slog.Logger) *terminalReporter {
	show := mode == "always"
	f, isFile := w.(*os.File)
	if mode == "auto" && isFile && term.IsTerminal(int(f.Fd())) {
		show = true
	}
	r := &terminalReporter{log: log}
	if show {
		cols := func() int { return 80 } // --progress always, not to a terminal
		if c, ok := w.(interface{ Columns() int }); ok {
			cols = c.Columns // a writer that knows its width
		} else if isFile && term.IsTerminal(int(f.Fd())) {
			cols = func() int {
				if c, _, err := term.GetSize(int(f.Fd())); err == nil && c > 0 {
					return c
				}
				return 80
			}
		}
		r.bar = newProgressLine(w, cols, time.Now)
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
	r.draw(true)
}

func (r *terminalReporter) FolderPlanned(folder string, n int, bytes int64) {}

// add counts n messages handled, keeping the total above what was handled,
// for mail that arrived after the plan.
func (r *terminalReporter) add(n int64) {
	r.done += n
	if r.total > 0 && r.done > r.total {
		r.total = r.done
	}
	r.draw(false)
}

// draw shows the current state (at most every progressInterval unless now).
func (r *terminalReporter) draw(now bool) {
	if r.bar != nil {
		r.bar.draw(progressState{folder: r.folder, done: r.done, total: r.total, bytes: r.bytes}, now)
	}
}

func (r *terminalReporter) FolderStarted(folder string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.folder = folder
	r.draw(false)
	r.log.Debug("copying", "folder", folder)
}

func (r *terminalReporter) MessageCopied(folder string, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += bytes
	r.folder = folder
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

// clearBar takes the progress line off the screen (the next event draws
// it again).
func (r *terminalReporter) clearBar() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.clear()
	}
}

// finish takes the progress line off the screen for good: what follows
// (the summary) starts on a clean line.
func (r *terminalReporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		r.bar.clear()
		r.bar = nil
	}
}

// progressInterval is how often the progress line is drawn at most.
const progressInterval = 100 * time.Millisecond

// folderWidth is the most the folder name takes of the progress line.
const folderWidth = 24

// progressState is what one frame of the progress line shows.
type progressState struct {
	folder             string
	done, total, bytes int64
}

// progressLine draws one line, redrawn in place with "\r" and ANSI
// clear-to-end-of-line, that never reaches the terminal's last three
// columns: so it never wraps, and the "^C" a terminal echoes for Ctrl-C
// lands on it and goes when it is cleared. When the terminal is narrow
// the folder name is shortened and the columns of least use are left out
// (ETA, rate, bytes, the bar). The rate and the ETA appear only once they
// mean something (see minRateTime).
type progressLine struct {
	w     io.Writer
	cols  func() int // the terminal's width now
	now   func() time.Time
	first time.Time // when the first message was counted
	base  int64     // messages counted before then (a rerun's skips)
	last  time.Time // the last frame drawn
	shown bool      // a frame is on the screen

	pb      *progressbar.ProgressBar // renders the bar column (see bar)
	pbWidth int
}

// The rate is shown once minRateTime has passed since the first message
// and minRateMessages were handled since (or, for a slow run, one message
// and slowRateTime).
const (
	minRateTime     = 3 * time.Second
	minRateMessages = 20
	slowRateTime    = 30 * time.Second
)

func newProgressLine(w io.Writer, cols func() int, now func() time.Time) *progressLine {
	return &progressLine{w: w, cols: cols, now: now}
}

func (p *progressLine) draw(s progressState, force bool) {
	now := p.now()
	if p.first.IsZero() && s.done > 0 {
		p.first, p.base = now, s.done
	}
	if !force && p.shown && now.Sub(p.last) < progressInterval {
		return
	}
	p.last = now
	line := p.layout(s, p.cols()-3, now)
	io.WriteString(p.w, "\r"+line+"\x1b[K")
	p.shown = true
}

func (p *progressLine) clear() {
	if p.shown {
		io.WriteString(p.w, "\r\x1b[2K")
		p.shown = false
	}
}

// column is one part of the progress line.
type column struct {
	text     string
	min, max int // widths it may take (text is cut or padded to the width)
	width    int
	order    int // place on the line, left to right
}

// layout composes the line for a terminal of avail usable columns: the
// columns in order of importance, each only if it fits, then the spare
// room to the folder name and the bar.
func (p *progressLine) layout(s progressState, avail int, now time.Time) string {
	count := strconv.FormatInt(s.done, 10)
	if s.total > 0 {
		count += "/" + strconv.FormatInt(s.total, 10)
	}
	cols := []*column{{text: count, order: 2}}
	if s.total > 0 {
		cols = append(cols, &column{text: fmt.Sprintf("%d%%", min(100, s.done*100/s.total)), order: 3})
	}
	var folder *column
	if s.folder != "" {
		w := textWidth(s.folder)
		folder = &column{text: s.folder, min: min(8, w), max: min(folderWidth, w), order: 0}
		cols = append(cols, folder)
	}
	cols = append(cols, &column{text: humanBytes(s.bytes), order: 4})
	if rate, ok := p.rate(s, now); ok {
		cols = append(cols, &column{text: formatRate(rate), order: 5})
		if s.total > s.done {
			eta := time.Duration(float64(s.total-s.done) / rate * float64(time.Second))
			cols = append(cols, &column{text: "ETA " + formatETA(eta), order: 6})
		}
	}
	if s.total > 0 {
		cols = append(cols, &column{min: 12, max: 32, order: 1}) // the bar
	}
	var shown []*column
	used := -2
	for _, c := range cols {
		if c.min == 0 {
			c.min, c.max = textWidth(c.text), textWidth(c.text)
		}
		if used+2+c.min <= avail {
			c.width = c.min
			used += 2 + c.min
			shown = append(shown, c)
		}
	}
	for _, c := range shown { // spare room: the folder name first, then the bar
		grow := min(c.max-c.width, avail-used)
		c.width += grow
		used += grow
	}
	if folder != nil && folder.width > 0 { // then a steady place for the bar
		grow := min(folderWidth-folder.width, avail-used)
		folder.width += max(grow, 0)
	}
	parts := make([]string, 7)
	for _, c := range shown {
		switch {
		case c.order == 1:
			parts[1] = p.bar(s.done, s.total, c.width)
		case c.order == 0:
			parts[0] = fitText(c.text, c.width)
		default:
			parts[c.order] = c.text
		}
	}
	var out []string
	for _, t := range parts {
		if t != "" {
			out = append(out, t)
		}
	}
	return strings.Join(out, "  ")
}

// rate is messages per second since the first message, once that means
// something.
func (p *progressLine) rate(s progressState, now time.Time) (float64, bool) {
	if p.first.IsZero() {
		return 0, false
	}
	d, n := now.Sub(p.first), s.done-p.base
	if n < 1 || d < minRateTime || n < minRateMessages && d < slowRateTime {
		return 0, false
	}
	return float64(n) / d.Seconds(), true
}

func formatRate(r float64) string {
	if r < 1 {
		return fmt.Sprintf("%.0f msg/min", r*60)
	}
	return fmt.Sprintf("%.0f msg/s", r)
}

func formatETA(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

// barTheme draws the bar in ASCII: "[=====>      ]".
var barTheme = progressbar.Theme{Saucer: "=", SaucerHead: ">", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}

// bar is the bar of one frame, width columns wide, rendered by
// schollz/progressbar (its saucer, head and padding arithmetic). Only the
// bar is taken from its rendering: the rest of the line (which columns fit,
// the rate and ETA once they mean something, redrawing in place without
// wrapping) is progressLine's, because progressbar sizes its line once,
// not to the terminal's width at each frame, and predicts from the first
// second.
func (p *progressLine) bar(done, total int64, width int) string {
	if p.pb == nil || p.pbWidth != width || p.pb.GetMax64() != total {
		p.pb = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(io.Discard), // rendered here, written by draw
			progressbar.OptionSetWidth(width-2),
			progressbar.OptionSetTheme(barTheme),
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionSetRenderBlankState(true),
			progressbar.OptionThrottle(0))
		p.pbWidth = width
	}
	p.pb.Set64(min(done, total))
	r := p.pb.String()
	i, j := strings.IndexByte(r, '['), strings.LastIndexByte(r, ']')
	if i < 0 || j < i || textWidth(r[i:j+1]) != width {
		return "" // (not rendered: the line goes without its bar)
	}
	return r[i : j+1]
}

// fitText is s padded or cut to exactly width columns; a cut name keeps its
// end (the deepest level) after "..".
func fitText(s string, width int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s)
	if w := textWidth(s); w <= width {
		return s + strings.Repeat(" ", width-w)
	}
	if width <= 2 {
		return strings.Repeat(".", width)
	}
	rs := []rune(s)
	tail := ""
	for i := len(rs) - 1; i >= 0 && textWidth(string(rs[i])+tail) <= width-2; i-- {
		tail = string(rs[i]) + tail
	}
	out := ".." + tail
	return out + strings.Repeat(" ", width-textWidth(out))
}

// textWidth is how many terminal columns s takes: East Asian wide
// characters two, combining marks none, every other character one.
func textWidth(s string) int {
	w := 0
	for _, r := range s {
		switch {
		case unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Me, r) || r == 0x200B:
		case isWide(r):
			w += 2
		default:
			w++
		}
	}
	return w
}

func isWide(r rune) bool {
	return r >= 0x1100 && (r <= 0x115F || r == 0x2329 || r == 0x232A ||
		(r >= 0x2E80 && r <= 0xA4CF && r != 0x303F) || (r >= 0xAC00 && r <= 0xD7A3) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0xFE30 && r <= 0xFE4F) || (r >= 0xFF00 && r <= 0xFF60) ||
		(r >= 0xFFE0 && r <= 0xFFE6) || (r >= 0x1F300 && r <= 0x1F64F) || (r >= 0x1F900 && r <= 0x1F9FF) ||
		(r >= 0x20000 && r <= 0x3FFFD))
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
