package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// copyFlags are the flags every copy takes (CLI.md).
type copyFlags struct {
	src, dst         secretFlags
	tls              tlsFlags
	include, exclude []string
	maps             []string
	prefix           string
	since, before    string
	dedup            string
	deleteSource     bool
	syncDeletions    bool
	watch            bool
	interval         time.Duration
	sharedFolders    bool
	dryRun           bool
	jobs             int
	stateDir         string
	report           string
	progress         string
	logLevel         string

	// Providers and many accounts. The flags are declared here; their
	// behaviour lives in endpoint.go and migrate/mailconn (OAuth2),
	// presets.go and migrate/gmail.go, migrate/ratelimit.go and batch.go.
	preset            string
	maxBytesPerSecond int64
	maxMessagesPerSec float64
	batch             string
	accounts          int
	shard             string
	maxMessageSize    int64

	cmd           *cobra.Command // the command the flags belong to (Flags().Changed)
	presetApplied bool
}

// add adds the flags of every copy into a destination (migrate and
// archive): the source's, selection and the run's.
func (f *copyFlags) add(cmd *cobra.Command) {
	f.src.side, f.dst.side = "src", "dst"
	f.cmd = cmd
	fl := cmd.Flags()
	fl.StringVar(&f.src.tlsMode, "src-tls", "", "source TLS, `MODE` tls | starttls | none (default from the scheme: imaps:// and pop3s:// tls, imap:// and pop3:// starttls)")
	fl.StringVar(&f.tls.caFile, "ca-file", "", "extra trusted CA certificates (PEM) in `FILE`")
	fl.BoolVar(&f.tls.insecureSkip, "insecure-skip-verify", false, "accept any certificate (dangerous)")
	fl.StringVar(&f.src.file, "src-password-file", "", "read the source password from `FILE` (first line); used instead of MAILFERRY_SRC_PASSWORD")
	fl.StringVar(&f.src.cmd, "src-password-cmd", "", "run `CMD` and use its first line as the source password (not with --src-password-file); used instead of MAILFERRY_SRC_PASSWORD")
	fl.StringVar(&f.src.tokenCmd, "src-oauth2-token-cmd", "", "run `CMD` for an OAuth2 access token for the source (XOAUTH2/OAUTHBEARER); run again on reconnect or when refused")
	fl.StringArrayVar(&f.include, "include", nil, "copy only folders matching `GLOB`, repeatable; * matches across levels (\"Archive/*\": every folder under Archive), case matters")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "skip folders matching `GLOB`, repeatable")
	fl.StringArrayVar(&f.maps, "map", nil, "rename folder OLD (and its subfolders) to NEW: `OLD=NEW`, repeatable")
	fl.StringVar(&f.prefix, "prefix", "", "put everything under `FOLDER` at the destination")
	fl.StringVar(&f.since, "since", "", "only messages with internal date on or after `YYYY-MM-DD`")
	fl.StringVar(&f.before, "before", "", "only messages with internal date before `YYYY-MM-DD`")
	fl.StringVar(&f.dedup, "dedup", "folder", "what counts as already there, `MODE` folder | account | off")
	fl.BoolVar(&f.deleteSource, "delete-source", false, "remove from the source what was durably copied with the same bytes (IMAP: UID EXPUNGE of exactly those; POP3: DELE)")
	fl.BoolVar(&f.sharedFolders, "shared-folders", false, sharedFoldersUsage)
	fl.BoolVar(&f.dryRun, "dry-run", false, "show what would be copied (and deleted); change nothing anywhere")
	fl.IntVar(&f.jobs, "jobs", 4, "`N` folders copied in parallel")
	fl.StringVar(&f.stateDir, "state-dir", "", "where resume state lives (default $XDG_STATE_HOME/mailferry, or ~/.local/state/mailferry)")
	fl.StringVar(&f.report, "report", "", "write the JSON report to `FILE`")
	fl.StringVar(&f.progress, "progress", "auto", "progress bar on stderr, `WHEN` auto | always | never (auto: on a terminal)")
	fl.StringVar(&f.logLevel, "log-level", "info", "what is said on stderr, `LEVEL` debug | info | warn | error")
	fl.StringVar(&f.preset, "preset", "", "provider settings, `NAME` gmail | office365 (see examples/presets.md); flags you give win")
	fl.Var((*byteSize)(&f.maxBytesPerSecond), "max-bytes-per-second", "limit the copy rate of the run to `RATE` bytes per second: 2000000, 2MB, 500KiB (0: no limit)")
	fl.Float64Var(&f.maxMessagesPerSec, "max-messages-per-second", 0, "limit the copy rate of the run to `RATE` messages per second, e.g. 5 or 0.5 (0: no limit)")
	fl.Var((*byteSize)(&f.maxMessageSize), "max-message-size", "do not send messages larger than `SIZE` (e.g. 150MiB): each is named in the report, exit 3 (0: no limit)")
}

// describeStateDir puts the default --state-dir as computed here into the
// flag's help: "(default $XDG_STATE_HOME/mailferry, or
// ~/.local/state/mailferry; here /home/alice/.local/state/mailferry)".
func (f *copyFlags) describeStateDir(cmd *cobra.Command, env *environment) {
	fl := cmd.Flags().Lookup("state-dir")
	fl.Usage = fmt.Sprintf("where resume state lives in `DIR` (default $XDG_STATE_HOME/mailferry, or ~/.local/state/mailferry without it; here %s)", f.stateDirectory(env))
}

// addMigrate adds the flags of migrate alone: a destination server's, many
// accounts from a CSV file, and the cutover's.
func (f *copyFlags) addMigrate(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dst.tlsMode, "dst-tls", "", "destination TLS, `MODE` tls | starttls | none (default from the scheme)")
	fl.StringVar(&f.dst.file, "dst-password-file", "", "read the destination password from `FILE` (first line); used instead of MAILFERRY_DST_PASSWORD")
	fl.StringVar(&f.dst.cmd, "dst-password-cmd", "", "run `CMD` and use its first line as the destination password (not with --dst-password-file); used instead of MAILFERRY_DST_PASSWORD")
	fl.StringVar(&f.dst.tokenCmd, "dst-oauth2-token-cmd", "", "run `CMD` for an OAuth2 access token for the destination")
	fl.StringVar(&f.batch, "batch", "", "migrate every account listed in `FILE` (CSV, columns above)")
	fl.IntVar(&f.accounts, "accounts", 2, "with --batch: `N` accounts migrated at once")
	fl.StringVar(&f.shard, "shard", "", "with --batch: `K/N`, this machine's share of the accounts (K from 1 to N)")
	fl.BoolVar(&f.syncDeletions, "sync-deletions", false, "remove at the destination what mailferry copied there and the source no longer has (never anything else)")
	fl.BoolVar(&f.watch, "watch", false, "after the pass, keep applying new mail, flag changes (and with --sync-deletions deletions) every --interval until SIGINT/SIGTERM")
	fl.DurationVar(&f.interval, "interval", 30*time.Second, "with --watch: `TIME` between passes")
	fl.Lookup("report").Usage = "write the JSON report to `FILE` (with --batch: the combined summary, each account's report beside it as FILE-N.json; or a DIR/)"
}

// options applies --preset, checks the flags and turns them into engine
// options.
func (f *copyFlags) options(env *environment) (migrate.Options, error) {
	var o migrate.Options
	if err := f.applyPreset(env); err != nil {
		return o, err
	}
	if f.maxMessagesPerSec < 0 || f.maxBytesPerSecond < 0 || f.maxMessageSize < 0 {
		return o, &usageError{fmt.Errorf("--max-bytes-per-second, --max-messages-per-second and --max-message-size cannot be negative")}
	}
	o.Include, o.Exclude, o.Prefix = f.include, f.exclude, f.prefix
	for _, m := range f.maps {
		mp, err := migrate.ParseMapping(m)
		if err != nil {
			return o, err
		}
		o.Maps = append(o.Maps, mp)
	}
	var err error
	if o.Since, err = parseDay("--since", f.since); err != nil {
		return o, err
	}
	if o.Before, err = parseDay("--before", f.before); err != nil {
		return o, err
	}
	if !o.Since.IsZero() && !o.Before.IsZero() && !o.Since.Before(o.Before) {
		return o, &usageError{fmt.Errorf("--since %s is not before --before %s: no message could be selected", f.since, f.before)}
	}
	switch d := migrate.Dedup(f.dedup); d {
	case migrate.DedupFolder, migrate.DedupAccount, migrate.DedupOff:
		o.Dedup = d
	default:
		return o, &usageError{fmt.Errorf("--dedup must be folder, account or off, not %q", f.dedup)}
	}
	if f.jobs < 1 || f.jobs > 64 {
		return o, &usageError{fmt.Errorf("--jobs must be between 1 and 64")}
	}
	switch f.progress {
	case "auto", "always", "never":
	default:
		return o, &usageError{fmt.Errorf("--progress must be auto, always or never")}
	}
	if _, err := parseLevel(f.logLevel); err != nil {
		return o, err
	}
	o.Jobs, o.DryRun, o.DeleteSource = f.jobs, f.dryRun, f.deleteSource
	if f.syncDeletions && f.deleteSource {
		return o, &usageError{fmt.Errorf("--sync-deletions and --delete-source cannot be combined: what one deletes at the source the other would delete at the destination")}
	}
	o.SyncDeletions = f.syncDeletions
	o.SharedFolders = f.sharedFolders
	return o, nil
}

func parseDay(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return t, &usageError{fmt.Errorf("%s wants YYYY-MM-DD, got %q", flag, s)}
	}
	return t, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, &usageError{fmt.Errorf("--log-level must be debug, info, warn or error")}
	}
	return l, nil
}

// sharedFoldersUsage is --shared-folders's help in migrate, archive and
// folders.
const sharedFoldersUsage = "also copy folders from other users' and shared namespaces (RFC 2342); they are never deleted from by --delete-source"

// stateDir is --state-dir or $XDG_STATE_HOME/mailferry or ~/.local/state/mailferry.
func (f *copyFlags) stateDirectory(env *environment) string {
	if f.stateDir != "" {
		return f.stateDir
	}
	if x := env.getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "mailferry")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "mailferry")
	}
	return ".mailferry-state"
}

func newMigrateCommand(env *environment) *cobra.Command {
	var f copyFlags
	cmd := &cobra.Command{
		Use:   "migrate SOURCE DEST",
		Short: "Copy every folder and message from SOURCE into DEST",
		Long: `Copy every folder and message from SOURCE into DEST, keeping flags and internal
dates. Messages already at DEST (by identity key) are not copied again; a rerun
resumes where a stopped run ended. Nothing is deleted anywhere unless
--delete-source is given, and then only what was durably copied.

Endpoints: imap://user@host[:port] (STARTTLS), imaps://user@host[:port],
pop3://user@host[:port] (STLS), pop3s://user@host[:port], maildir:PATH,
mbox:PATH (a directory of mbox files, or one FILE.mbox: then INBOX only).

Many accounts: --batch FILE migrates every account of a CSV file instead of
SOURCE and DEST, --accounts N at once, each with its own state and report; a
failing account does not stop the others. The file has a header row and the
columns source, destination (required), src_password_file, dst_password_file,
src_token_cmd, dst_token_cmd, src_tls, dst_tls, ca_file (optional, as the
flags of those names: a relative file name is taken from the file's
directory; an empty cell falls back to the --src-*/--dst-* and --ca-file
flags and MAILFERRY_SRC_PASSWORD/MAILFERRY_DST_PASSWORD; a batch never
prompts). Lines starting with # are comments. --shard K/N keeps rows i
(0-based, data rows in file order) with i % N == K-1, so that N machines
given K = 1..N cover every row exactly once.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if f.batch != "" {
				if len(args) != 0 {
					return &usageError{fmt.Errorf("%s: with --batch the accounts come from the file: give no SOURCE or DEST", cmd.Name())}
				}
				if f.watch {
					return &usageError{fmt.Errorf("--watch keeps one account current: it does not go with --batch")}
				}
				return nil
			}
			for _, name := range []string{"accounts", "shard"} {
				if cmd.Flags().Changed(name) {
					return &usageError{fmt.Errorf("--%s goes with --batch FILE", name)}
				}
			}
			if len(args) != 2 {
				return &usageError{fmt.Errorf("%w; or --batch FILE for the accounts listed in FILE", argsError(cmd, args))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.batch != "" {
				return runBatch(cmd, env, &f)
			}
			return runMigrate(cmd, env, &f, args[0], args[1])
		},
	}
	f.add(cmd)
	f.addMigrate(cmd)
	f.describeStateDir(cmd, env)
	setHelp(cmd, `  mailferry migrate imaps://alice@old.example imaps://alice@new.example
  mailferry migrate imaps://alice@old.example maildir:~/Maildir --dry-run
  mailferry migrate imaps://alice@old.example mbox:one.mbox --include INBOX
  mailferry migrate imaps://alice@old.example imaps://alice@new.example \
      --include 'Archive/*' --exclude Archive/Spam --delete-source
  mailferry migrate pop3s://alice@old.example imaps://alice@new.example
  mailferry migrate imaps://alice@gmail.com imaps://alice@new.example \
      --preset gmail
  mailferry migrate --batch accounts.csv --accounts 4 --report reports/
  mailferry migrate --batch accounts.csv --shard 2/8 --report reports/`, exitHelpCopy+exitHelpBatch)
	return cmd
}

func runMigrate(cmd *cobra.Command, env *environment, f *copyFlags, srcArg, dstArg string) error {
	src, err := parseEndpoint(srcArg)
	if err != nil {
		return err
	}
	dst, err := parseEndpoint(dstArg)
	if err != nil {
		return err
	}
	opts, err := f.options(env)
	if err != nil {
		return err
	}
	if err := f.checkSingleMbox(src, dst); err != nil {
		return err
	}
	if err := checkReportPath(f.report); err != nil {
		return err
	}
	if err := resolveServer(env, src, &f.src, &f.tls); err != nil {
		return f.reportEarlyError(src, dst, err)
	}
	if err := resolveServer(env, dst, &f.dst, &f.tls); err != nil {
		return f.reportEarlyError(src, dst, err)
	}
	if f.watch {
		if opts.DryRun {
			return &usageError{fmt.Errorf("--watch and --dry-run cannot be combined")}
		}
		return watch(cmd.Context(), env, f, opts, src, dst)
	}
	return execute(cmd.Context(), env, f, opts, src, dst)
}

// checkSingleMbox refuses, before anything is opened, a single mbox file
// (mbox:FILE.mbox, which holds only INBOX) as the destination of a
// selection that is not known to be INBOX alone: a POP3 server or another
// single mbox file as the source, or --include INBOX.
func (f *copyFlags) checkSingleMbox(src, dst *endpoint) error {
	if !dst.isSingleMbox() {
		return nil
	}
	inboxOnly := strings.HasPrefix(src.scheme, "pop3") || src.isSingleMbox()
	if !inboxOnly && len(f.include) > 0 {
		inboxOnly = true
		for _, g := range f.include {
			inboxOnly = inboxOnly && strings.EqualFold(g, "INBOX")
		}
	}
	if inboxOnly && f.prefix == "" {
		return nil
	}
	return &usageError{fmt.Errorf("%s is a single mbox file: it holds only INBOX, and %s may have other folders; add --include INBOX (without --prefix), or give a directory (mbox:DIR) for every folder", dst, src)}
}

// execute runs the engine with a terminal reporter, prints the summary and
// writes the report (on every exit). It is shared by migrate and archive. A
// run that stopped before it copied anything prints no table: its error
// (a *notStarted) says it all.
func execute(ctx context.Context, env *environment, f *copyFlags, opts migrate.Options, src, dst *endpoint) error {
	level, _ := parseLevel(f.logLevel)
	log := newVoiceLogger(env.stderr, level)
	ui := newTerminalReporter(env.stderr, f.progress, log)
	rep, err := f.runJob(ctx, env, opts, src, dst, ui)
	ui.finish()
	started := err == nil || len(rep.Folders) > 0 || rep.Totals != (migrate.Counts{})
	if !dst.isServer() {
		noteEscapedNames(rep)
	}
	if started {
		printSummary(env.stdout, rep)
		// A local destination keeps a manifest (archive and migrate alike):
		// its chain head is what 'mailferry verify --last-hash' checks.
		if !dst.isServer() && !opts.DryRun {
			if h := dst.stores(true).LastHash(); h != "" {
				fmt.Fprintf(env.stdout, "manifest chain head: %s\n", h)
			}
		}
	}
	if f.report != "" {
		if werr := rep.WriteFile(f.report); werr != nil && err == nil {
			err = fmt.Errorf("--report: %w", werr)
		}
	}
	if errors.Is(err, migrate.ErrInterrupted) {
		err = fmt.Errorf("%w: %d copied so far; run the same command again to resume", err, rep.Totals.Copied)
	}
	if err != nil && !started {
		return &notStarted{err}
	}
	if err != nil {
		return err
	}
	if rep.Totals.Failed > 0 {
		fmt.Fprintf(env.stderr, "mailferry: %s failed; each is named in the report%s\n",
			plural(rep.Totals.Failed, "message"), strings.TrimSuffix(" ("+f.report+")", " ()"))
		return errSomeFailed
	}
	return nil
}

// noteEscapedNames gives each folder whose name a local store had to
// escape on disk ("Notes 1.5" is stored as "Notes 1%2E5": '.' is the
// Maildir++ separator) the note migrate gives a name that holds a server's
// separator.
func noteEscapedNames(rep *migrate.Report) {
	for i := range rep.Folders {
		fr := &rep.Folders[i]
		var held []string
		for _, c := range strings.Split(fr.Destination, "/") {
			if plain, err := formats.DecodeFSComponent(c); err == nil && plain != c {
				held = append(held, escapedChars(plain)...)
			}
		}
		if len(held) > 0 {
			note := fmt.Sprintf("a name part holds %s, which a local store's file name cannot: stored as %q", strings.Join(slices.Compact(slices.Sorted(slices.Values(held))), " "), fr.Destination)
			fr.Note = strings.TrimPrefix(fr.Note+"; "+note, "; ")
		}
	}
}

// escapedChars are the characters of one folder name part that
// formats.EncodeFSComponent escapes, quoted: "'.'".
func escapedChars(part string) []string {
	var out []string
	for i, r := range part {
		if s := string(r); formats.EncodeFSComponent(s) != s || i == 0 && r == '-' {
			out = append(out, strconv.QuoteRune(r))
		}
	}
	return out
}

// runJob runs one migration from src to dst (both resolved) through the
// engine: the one code path of migrate, archive and every account of a
// batch. The endpoints are wrapped for --preset, the rate limits (one
// budget for all workers of the run) and --max-message-size.
func (f *copyFlags) runJob(ctx context.Context, env *environment, opts migrate.Options, src, dst *endpoint, ui migrate.Reporter) (*migrate.Report, error) {
	opts.Reporter = ui
	maybeSame, err := sameMailbox(src, dst)
	if err != nil {
		return &migrate.Report{Source: src.String(), Destination: dst.String()}, err
	}
	// A dry run reads the state (never writes it): flags follow and
	// --sync-deletions need the ledger to say what they would change.
	opts.StatePath = migrate.StatePath(f.stateDirectory(env), src.String(), dst.String())
	warned := &storeWarnings{ui: ui}
	if !src.isServer() {
		src.stores(false).Warn = warned.add
	}
	openSrc, openDst := openSource(src), openSink(dst, opts.DryRun)
	wrapSrc := f.presetSource()
	limits := migrate.NewLimits(f.maxBytesPerSecond, f.maxMessagesPerSec, nil)
	job := migrate.Job{
		SourceName: src.String(), DestName: dst.String(),
		OpenSource: func(ctx context.Context) (migrate.Source, error) {
			s, err := openSrc(ctx)
			if err != nil {
				return nil, err // never a wrapper around a typed nil
			}
			return migrate.LimitSource(wrapSrc(s), limits), nil
		},
		OpenSink: func(ctx context.Context) (migrate.Sink, error) {
			d, err := openDst(ctx)
			if err != nil {
				return nil, err
			}
			return migrate.LimitMessageSize(d, f.maxMessageSize), nil
		},
		MaybeSameAccount: maybeSame,
		Options:          opts,
	}
	rep, err := migrate.Run(ctx, job)
	rep.Warnings = append(rep.Warnings, warned.list()...)
	return rep, err
}

// storeWarnings passes a local source's warnings on to the terminal, each
// once (every worker's store may say the same), and keeps them for the
// report.
type storeWarnings struct {
	ui   migrate.Reporter
	mu   sync.Mutex
	seen []string
}

func (w *storeWarnings) add(msg string) {
	w.mu.Lock()
	dup := slices.Contains(w.seen, msg)
	if !dup {
		w.seen = append(w.seen, msg)
	}
	w.mu.Unlock()
	if !dup {
		w.ui.Warn(msg)
	}
}

func (w *storeWarnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// byteSize is a flag value in bytes: a plain number, or one with a unit
// (KB, MB, GB: powers of 1000; KiB, MiB, GiB: powers of 1024; K, M, G mean
// KB, MB, GB; case does not matter).
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSize) Type() string   { return "bytes" }

func (b *byteSize) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v < 0 || v*mult > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is not a size (e.g. 150MiB, 2MB, 500000)", s)
	}
	return int64(v * mult), nil
}

// notStarted is the error of a run that stopped before it copied anything
// (a refused login or TLS handshake, an unreachable server): no summary and
// no chain head are printed for it.
type notStarted struct{ err error }

func (e *notStarted) Error() string { return e.err.Error() }
func (e *notStarted) Unwrap() error { return e.err }

// checkReportPath refuses, before anything happens, a --report that cannot
// be written: a directory (DIR/ is for --batch), or a file that cannot be
// created. A file it creates to find out is removed again.
func checkReportPath(path string) error {
	if path == "" {
		return nil
	}
	if strings.HasSuffix(path, "/") || strings.HasSuffix(path, string(os.PathSeparator)) {
		return &usageError{fmt.Errorf("--report %s: a directory; give a file name (a directory is for --batch)", path)}
	}
	st, statErr := os.Stat(path)
	if statErr == nil && st.IsDir() {
		return &usageError{fmt.Errorf("--report %s: a directory; give a file name (a directory is for --batch)", path)}
	}
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &usageError{fmt.Errorf("--report %s: cannot write it: %v", path, err)}
	}
	fh.Close()
	if statErr != nil {
		os.Remove(path)
	}
	return nil
}

// reportEarlyError writes the report of a run that stopped before the
// engine ran (a password file that cannot be read, say): the report is
// written on every exit once its path was accepted. It returns err.
func (f *copyFlags) reportEarlyError(src, dst *endpoint, err error) error {
	if f.report == "" {
		return err
	}
	rep := &migrate.Report{Source: src.String(), Destination: dst.String(), Started: time.Now().UTC(),
		DryRun: f.dryRun, Folders: []migrate.FolderReport{}, Failures: []migrate.Failure{}, Error: err.Error()}
	if werr := rep.WriteFile(f.report); werr != nil {
		return fmt.Errorf("%w (and --report: %v)", err, werr)
	}
	return err
}
