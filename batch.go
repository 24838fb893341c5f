package main

// mailferry migrate --batch FILE: many accounts, each through the same code
// path as one migrate (parseEndpoint, resolveServer with the row's secrets,
// copyFlags.runJob), each with its own state file (keyed by the endpoint
// pair) and its own report, --accounts N at a time. An account that fails
// does not stop the others; the exit status is 3 when any did not complete,
// 1 when none did. Each failure is said once, in the list at the end.

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/mailferry/mailferry/migrate"
)

// batchColumns are the columns of a batch file, in the order the examples
// use; the header row may give them in any order. source and destination
// are required.
var batchColumns = []string{"source", "destination", "src_password_file", "dst_password_file", "src_token_cmd", "dst_token_cmd", "src_tls", "dst_tls", "ca_file"}

// batchRow is one account of a batch file.
type batchRow struct {
	account                          int // 1-based number among the data rows, in file order: stable across shards
	line                             int // line in the file, for messages
	source, destination              string
	srcPasswordFile, dstPasswordFile string // resolved against the file's directory
	srcTokenCmd, dstTokenCmd         string
	srcTLS, dstTLS                   string    // as --src-tls and --dst-tls: tls | starttls | none
	caFile                           string    // as --ca-file, resolved against the file's directory
	src, dst                         *endpoint // parsed, checked before anything runs
}

// readBatch reads and checks a whole batch file: a header row naming the
// columns, then one account per row. Lines starting with # are comments.
// Every error is a usage error: nothing has been done yet.
func readBatch(path string) ([]batchRow, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &usageError{fmt.Errorf("--batch: %w", err)}
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) // a spreadsheet's byte order mark
	r := csv.NewReader(bytes.NewReader(b))
	r.Comment = '#'
	r.TrimLeadingSpace = true
	bad := func(line int, format string, args ...any) error {
		return &usageError{fmt.Errorf("--batch %s:%d: %s", path, line, fmt.Sprintf(format, args...))}
	}
	header, err := r.Read()
	if err == io.EOF {
		return nil, &usageError{fmt.Errorf("--batch %s: empty file: want a header row (%s) and one row per account", path, strings.Join(batchColumns, ","))}
	}
	if err != nil {
		return nil, &usageError{fmt.Errorf("--batch %s: %w", path, err)}
	}
	hline, _ := r.FieldPos(0)
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		known := false
		for _, c := range batchColumns {
			known = known || c == h
		}
		if !known {
			return nil, bad(hline, "unknown column %q: the header row names the columns %s", h, strings.Join(batchColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, bad(hline, "column %q appears twice", h)
		}
		col[h] = i
	}
	for _, c := range []string{"source", "destination"} {
		if _, ok := col[c]; !ok {
			return nil, bad(hline, "no %q column: the first row must be a header naming the columns (%s)", c, strings.Join(batchColumns, ","))
		}
	}
	dir := filepath.Dir(path)
	cell := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	file := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		p = expandHome(p)
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var rows []batchRow
	pairs := map[string]int{}  // source and destination -> line
	locals := map[string]int{} // local destination -> line
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &usageError{fmt.Errorf("--batch %s: %w", path, err)}
		}
		line, _ := r.FieldPos(0)
		row := batchRow{
			account: len(rows) + 1, line: line,
			source: cell(rec, "source"), destination: cell(rec, "destination"),
			srcPasswordFile: file(cell(rec, "src_password_file")), dstPasswordFile: file(cell(rec, "dst_password_file")),
			srcTokenCmd: cell(rec, "src_token_cmd"), dstTokenCmd: cell(rec, "dst_token_cmd"),
			srcTLS: strings.ToLower(cell(rec, "src_tls")), dstTLS: strings.ToLower(cell(rec, "dst_tls")),
			caFile: file(cell(rec, "ca_file")),
		}
		if row.source == "" || row.destination == "" {
			return nil, bad(line, "source and destination are required")
		}
		if row.srcPasswordFile != "" && row.srcTokenCmd != "" || row.dstPasswordFile != "" && row.dstTokenCmd != "" {
			return nil, bad(line, "give a password file or a token command for a side, not both")
		}
		if row.src, err = parseEndpoint(row.source); err != nil {
			return nil, bad(line, "source: %v", err)
		}
		if row.dst, err = parseEndpoint(row.destination); err != nil {
			return nil, bad(line, "destination: %v", err)
		}
		if !row.src.isServer() && row.srcTokenCmd != "" {
			return nil, bad(line, "src_token_cmd for %s, which is not a server", row.source)
		}
		if !row.dst.isServer() && row.dstTokenCmd != "" {
			return nil, bad(line, "dst_token_cmd for %s, which is not a server", row.destination)
		}
		if err := row.checkTLS(); err != nil {
			return nil, bad(line, "%v", err)
		}
		// One state file per pair: two runs of the same pair at once would
		// contend for it (and copy the same messages).
		key := row.src.String() + "\x00" + row.dst.String()
		if other, dup := pairs[key]; dup {
			return nil, bad(line, "the same source and destination as line %d", other)
		}
		pairs[key] = line
		// A local store is written by one run at a time.
		if !row.dst.isServer() {
			if other, dup := locals[row.dst.String()]; dup {
				return nil, bad(line, "the same local destination as line %d: give each account its own directory", other)
			}
			locals[row.dst.String()] = line
		}
		rows = append(rows, row)
	}
	if len(rows) == 0 {
		return nil, &usageError{fmt.Errorf("--batch %s: no accounts after the header row", path)}
	}
	return rows, nil
}

// checkTLS checks a row's src_tls, dst_tls and ca_file as the flags are
// checked: a mode for a server, a CA file with a PEM certificate in it.
func (row *batchRow) checkTLS() error {
	for _, c := range []struct {
		col, mode string
		ep        *endpoint
	}{{"src_tls", row.srcTLS, row.src}, {"dst_tls", row.dstTLS, row.dst}} {
		switch c.mode {
		case "":
			continue
		case "tls", "starttls", "none":
		default:
			return fmt.Errorf("%s must be tls, starttls or none, not %q", c.col, c.mode)
		}
		if !c.ep.isServer() {
			return fmt.Errorf("%s for %s, which is not a server", c.col, c.ep)
		}
	}
	if row.caFile != "" {
		if _, err := (&tlsFlags{caFile: row.caFile}).config(nil); err != nil {
			return fmt.Errorf("ca_file: %v", err)
		}
	}
	return nil
}

// parseShard reads K/N (1 <= K <= N).
func parseShard(s string) (k, n int, err error) {
	ks, ns, ok := strings.Cut(s, "/")
	k, err1 := strconv.Atoi(strings.TrimSpace(ks))
	n, err2 := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err1 != nil || err2 != nil || n < 1 || k < 1 || k > n {
		return 0, 0, &usageError{fmt.Errorf("--shard wants K/N with 1 <= K <= N (machine K of N), got %q", s)}
	}
	return k, n, nil
}

// shardRows keeps the rows whose 0-based index i has i % n == k-1.
func shardRows(rows []batchRow, k, n int) []batchRow {
	var out []batchRow
	for i, r := range rows {
		if i%n == k-1 {
			out = append(out, r)
		}
	}
	return out
}

// Account outcomes in the summary.
const (
	statusComplete = "complete" // everything selected is at the destination
	statusPartial  = "partial"  // finished, but some messages failed (named in its report)
	statusFailed   = "failed"   // stopped by an error (authentication, connection, ...)
	statusChecked  = "checked"  // a dry run went through: what it would copy is counted
)

// accountResult is one account's line of the combined summary.
type accountResult struct {
	Account     int    `json:"account"` // row number among the file's accounts, from 1
	Line        int    `json:"line"`    // line in the batch file
	Source      string `json:"source"`
	Destination string `json:"destination"`
	Status      string `json:"status"` // complete | partial | failed
	migrate.Counts
	DurationSeconds float64 `json:"duration_seconds"`
	Error           string  `json:"error,omitempty"`
	Report          string  `json:"report,omitempty"` // the account's own report file
}

// batchSummary is the combined report of a batch run.
type batchSummary struct {
	Batch           string          `json:"batch"`
	Shard           string          `json:"shard,omitempty"`
	Started         time.Time       `json:"started"`
	DurationSeconds float64         `json:"duration_seconds"`
	DryRun          bool            `json:"dry_run,omitempty"`
	Accounts        []accountResult `json:"accounts"`
	Totals          migrate.Counts  `json:"totals"`
	Complete        int             `json:"complete"`
	Checked         int             `json:"checked,omitempty"` // dry run: accounts that went through
	Partial         int             `json:"partial"`
	Failed          int             `json:"failed"`
}

// batchReports says where reports go. --report FILE: the summary in FILE,
// account n's report in FILE's name with -n before the extension
// (report.json, report-7.json). --report DIR (an existing directory, or a
// name ending in /): DIR/summary.json (summary-K-of-N.json with --shard) and
// DIR/report-7.json.
func batchReports(report, shard string) (summary string, account func(n int) string, err error) {
	if report == "" {
		return "", func(int) string { return "" }, nil
	}
	st, statErr := os.Stat(report)
	if strings.HasSuffix(report, "/") || statErr == nil && st.IsDir() {
		if err := os.MkdirAll(report, 0o755); err != nil {
			return "", nil, fmt.Errorf("--report: %w", err)
		}
		name := "summary.json"
		if shard != "" {
			k, n, _ := parseShard(shard)
			name = fmt.Sprintf("summary-%d-of-%d.json", k, n)
		}
		return filepath.Join(report, name), func(n int) string {
			return filepath.Join(report, fmt.Sprintf("report-%d.json", n))
		}, nil
	}
	ext := filepath.Ext(report)
	stem := strings.TrimSuffix(report, ext)
	return report, func(n int) string { return fmt.Sprintf("%s-%d%s", stem, n, ext) }, nil
}

// lockedWriter serialises writes of several goroutines to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func runBatch(cmd *cobra.Command, env *environment, f *copyFlags) error {
	if f.accounts < 1 || f.accounts > 64 {
		return &usageError{fmt.Errorf("--accounts must be between 1 and 64")}
	}
	shardK, shardN := 1, 1
	if f.shard != "" {
		var err error
		if shardK, shardN, err = parseShard(f.shard); err != nil {
			return err
		}
	}
	all, err := readBatch(f.batch)
	if err != nil {
		return err
	}
	rows := shardRows(all, shardK, shardN)
	opts, err := f.options(env)
	if err != nil {
		return err
	}
	for _, row := range rows {
		if err := f.checkSingleMbox(row.src, row.dst); err != nil {
			return &usageError{fmt.Errorf("--batch %s:%d: %w", f.batch, row.line, err)}
		}
	}
	// Checked once, before any account runs: a bad --ca-file is a usage
	// error, and --insecure-skip-verify warns once for the whole batch.
	if _, err := f.tls.config(env); err != nil {
		return err
	}
	summaryPath, reportPath, err := batchReports(f.report, f.shard)
	if err != nil {
		return err
	}
	level, _ := parseLevel(f.logLevel)
	stderr := &lockedWriter{w: env.stderr}
	what := fmt.Sprintf("%d accounts", len(rows))
	if f.shard != "" {
		what = fmt.Sprintf("%d of %d accounts (shard %s)", len(rows), len(all), f.shard)
	}
	fmt.Fprintf(stderr, "mailferry: batch %s: %s, %d at a time\n", f.batch, what, f.accounts)

	sum := &batchSummary{Batch: f.batch, Shard: f.shard, Started: time.Now().UTC(), DryRun: opts.DryRun, Accounts: make([]accountResult, len(rows))}
	ctx := cmd.Context()
	var g errgroup.Group
	g.SetLimit(f.accounts)
	for i := range rows {
		row := rows[i]
		g.Go(func() error {
			res := f.runAccount(ctx, env, stderr, level, opts, row, len(all), reportPath(row.account))
			sum.Accounts[i] = res
			return nil // one account's failure does not stop the others
		})
	}
	g.Wait()
	sum.DurationSeconds = time.Since(sum.Started).Seconds()

	var failed []string
	for _, a := range sum.Accounts {
		sum.Totals.Add(a.Counts)
		switch a.Status {
		case statusComplete:
			sum.Complete++
		case statusChecked:
			sum.Checked++
		case statusPartial:
			sum.Partial++
			failed = append(failed, fmt.Sprintf("account %d (%s): %s failed", a.Account, a.Source, plural(a.Failed, "message")))
		default:
			sum.Failed++
			failed = append(failed, fmt.Sprintf("account %d (%s): %s", a.Account, a.Source, a.Error))
		}
	}
	printBatchSummary(env.stdout, sum)
	var werr error
	if summaryPath != "" {
		if werr = writeJSON(summaryPath, sum); werr != nil {
			werr = fmt.Errorf("--report: %w", werr)
		}
	}
	if ctx.Err() != nil { // stopped: a rerun resumes every account safely
		return fmt.Errorf("%w: %d copied so far; run the same command again to resume", migrate.ErrInterrupted, sum.Totals.Copied)
	}
	if len(failed) == 0 {
		return werr
	}
	fmt.Fprintf(env.stderr, "mailferry: %d of %d accounts did not complete:\n", len(failed), len(rows))
	for _, s := range failed {
		fmt.Fprintf(env.stderr, "  %s\n", oneLine(s))
	}
	if werr != nil {
		fmt.Fprintf(env.stderr, "mailferry: %s\n", oneLine(werr.Error()))
	}
	if sum.Failed == len(rows) { // nothing went through: an error, not failed messages
		return fmt.Errorf("batch: every account failed; each is named above")
	}
	return errSomeFailed
}

// runAccount migrates one account and never returns an error: the outcome
// is in the result (and in the account's report, when reports are asked).
func (f *copyFlags) runAccount(ctx context.Context, env *environment, stderr io.Writer, level slog.Level,
	opts migrate.Options, row batchRow, of int, reportPath string) accountResult {
	began := time.Now()
	res := accountResult{Account: row.account, Line: row.line, Source: row.src.String(), Destination: row.dst.String(), Report: reportPath}
	fmt.Fprintf(stderr, "mailferry: account %d/%d: %s -> %s: started\n", row.account, of, res.Source, res.Destination)

	// Fresh endpoints (a local store keeps per-run state in its endpoint),
	// and this account's own copy of the secrets and TLS settings.
	src, _ := parseEndpoint(row.source)
	dst, _ := parseEndpoint(row.destination)
	srcSecret, dstSecret, tf := f.src, f.dst, f.tls
	rowSecret(&srcSecret, row.srcPasswordFile, row.srcTokenCmd)
	rowSecret(&dstSecret, row.dstPasswordFile, row.dstTokenCmd)
	if row.srcTLS != "" {
		srcSecret.tlsMode = row.srcTLS
	}
	if row.dstTLS != "" {
		dstSecret.tlsMode = row.dstTLS
	}
	if row.caFile != "" {
		tf.caFile = row.caFile
	}
	// The command line's token command is for the rows' servers: a local
	// store needs no secret.
	if !src.isServer() {
		srcSecret.tokenCmd = ""
	}
	if !dst.isServer() {
		dstSecret.tokenCmd = ""
	}
	// A batch never prompts: N accounts cannot share one terminal.
	aenv := &environment{stdin: strings.NewReader(""), stdout: io.Discard, stderr: stderr, getenv: env.getenv}

	var rep *migrate.Report
	err := resolveServer(aenv, src, &srcSecret, &tf)
	if err == nil {
		err = resolveServer(aenv, dst, &dstSecret, &tf)
	}
	if err == nil {
		progress, w := "never", stderr // no bars when several accounts run at once
		if f.accounts == 1 {
			progress, w = f.progress, env.stderr
		}
		log := newVoiceLogger(stderr, level).With("account", row.account)
		ui := newTerminalReporter(w, progress, log)
		rep, err = f.runJob(ctx, aenv, opts, src, dst, ui)
		ui.finish()
	}
	if rep == nil { // stopped before the engine ran: still one report per account
		rep = &migrate.Report{Source: res.Source, Destination: res.Destination, Started: began.UTC(),
			DryRun: opts.DryRun, Folders: []migrate.FolderReport{}, Failures: []migrate.Failure{}}
		if err != nil {
			rep.Error = err.Error()
		}
	}
	res.Counts = rep.Totals
	res.DurationSeconds = time.Since(began).Seconds()
	switch {
	case err != nil:
		res.Status, res.Error = statusFailed, oneLine(err.Error())
	case rep.Totals.Failed > 0:
		res.Status = statusPartial
	case opts.DryRun:
		res.Status = statusChecked
	default:
		res.Status = statusComplete
	}
	if reportPath != "" {
		if werr := rep.WriteFile(reportPath); werr != nil {
			fmt.Fprintf(stderr, "mailferry: account %d: --report: %s\n", row.account, oneLine(werr.Error()))
			res.Report = ""
		}
	}
	// The error itself is said once, in the list at the end of the batch.
	end := fmt.Sprintf("%s: copied %d, skipped %d, failed %d in %.1fs", res.Status, res.Copied, res.Skipped, res.Failed, res.DurationSeconds)
	switch {
	case res.Error != "":
		end = res.Status + " (why: at the end)"
	case opts.DryRun:
		end = fmt.Sprintf("%s: would copy %d, skip %d", res.Status, res.Copied, res.Skipped)
	}
	fmt.Fprintf(stderr, "mailferry: account %d/%d: %s -> %s: %s\n", row.account, of, res.Source, res.Destination, end)
	return res
}

// rowSecret puts a row's password file or token command in place of the
// command line's ways for that side; a row that gives neither keeps them.
func rowSecret(s *secretFlags, file, tokenCmd string) {
	switch {
	case file != "":
		s.file, s.cmd, s.tokenCmd, s.rowGiven = file, "", "", true
	case tokenCmd != "":
		s.file, s.cmd, s.tokenCmd = "", "", tokenCmd
	}
}

// printBatchSummary writes one line per account and the totals.
func printBatchSummary(w io.Writer, sum *batchSummary) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	copied, done, n := "COPIED", "complete", sum.Complete
	if sum.DryRun {
		copied, done, n = "WOULD COPY", "checked", sum.Checked
	}
	fmt.Fprintln(tw, "ACCOUNT\tSOURCE\tDESTINATION\tSTATUS\t"+copied+"\tFAILED")
	for _, a := range sum.Accounts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\n", a.Account, a.Source, a.Destination, a.Status, a.Copied, a.Failed)
	}
	fmt.Fprintf(tw, "total\t\t\t%d/%d %s\t%d\t%d\n", n, len(sum.Accounts), done, sum.Totals.Copied, sum.Totals.Failed)
	tw.Flush()
	if sum.DryRun {
		fmt.Fprintf(w, "would copy %s (%s) for %s\n", plural(sum.Totals.Copied, "message"), humanBytes(sum.Totals.Bytes), plural(len(sum.Accounts), "account"))
		return
	}
	fmt.Fprintf(w, "copied %s (%s) for %s in %.1fs\n", plural(sum.Totals.Copied, "message"), humanBytes(sum.Totals.Bytes), plural(len(sum.Accounts), "account"), sum.DurationSeconds)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
