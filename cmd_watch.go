package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// --watch: after the first pass, keep the destination current until
// SIGINT/SIGTERM, with a delta pass every --interval (new mail, flag
// changes, and with --sync-deletions deletions). A pass where nothing
// changed costs one STATUS per folder on each side when the source has
// CONDSTORE. A pass that fails (a lost connection, a restarted server) is
// tried again with backoff, forever; only a TLS failure, a usage error, a
// refused first login or logins refused on watchAuthTries passes in a row
// end the watch. Each pass that changed something prints one line.

// maxWatchBackoff bounds the wait after failed passes.
const maxWatchBackoff = 5 * time.Minute

func watch(ctx context.Context, env *environment, f *copyFlags, opts migrate.Options, src, dst *endpoint) error {
	if f.interval <= 0 {
		return &usageError{fmt.Errorf("--interval must be positive")}
	}
	idle := &idler{open: openSource(src), none: src.scheme != "imap" && src.scheme != "imaps"}
	defer idle.close()
	idle.wait(ctx, time.Millisecond) // INBOX selected before the first pass: what arrives during it wakes the first wait
	err := execute(ctx, env, f, opts, src, dst)
	if err != nil && (watchFatal(err) || ctx.Err() != nil) {
		return err // (interrupted in the first pass: as without --watch)
	}
	level, _ := parseLevel(f.logLevel)
	ui := watchReporter{log: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: level}))}
	wait := f.interval
	refused := 0 // passes in a row whose login was refused
	if err != nil && !errors.Is(err, errSomeFailed) {
		wait = min(2*f.interval, maxWatchBackoff)
	}
	for {
		idle.wait(ctx, wait)
		if ctx.Err() != nil {
			fmt.Fprintln(env.stderr, "mailferry: watch stopped; the state is saved")
			return nil
		}
		rep, err := f.runJob(ctx, env, opts, src, dst, ui)
		if ctx.Err() != nil {
			fmt.Fprintln(env.stderr, "mailferry: watch stopped; what was copied is recorded")
			return nil
		}
		hint := ""
		switch {
		case err == nil || errors.Is(err, errSomeFailed):
			refused = 0 // both sides logged in
		case errors.Is(err, migrate.ErrAuth): // refused credentials, nothing else
			if refused++; refused >= watchAuthTries {
				return err
			}
			hint = fmt.Sprintf(" (login refused %d of %d times in a row; the watch ends at %d)", refused, watchAuthTries, watchAuthTries)
		case watchFatal(err):
			return err
		}
		if f.report != "" {
			rep.WriteFile(f.report)
		}
		if err != nil {
			wait = min(2*wait, maxWatchBackoff)
			fmt.Fprintf(env.stderr, "mailferry: watch: %s; trying again in %s%s\n", oneLine(err.Error()), wait, hint)
			continue
		}
		wait = f.interval
		if line := changeLine(rep); line != "" {
			fmt.Fprintf(env.stdout, "%s %s\n", time.Now().Format(time.TimeOnly), line)
		}
	}
}

// watchFatal says an error ends the watch: trying again cannot help.
func watchFatal(err error) bool {
	var ue *usageError
	return errors.As(err, &ue) || errors.Is(err, migrate.ErrUsage) || errors.Is(err, migrate.ErrAuth) || errors.Is(err, migrate.ErrTLS)
}

// changeLine is one pass's changes in a line, "" when there were none.
func changeLine(rep *migrate.Report) string {
	t := rep.Totals
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{
		{t.Copied, "copied"}, {t.FlagsUpdated, "flags updated"}, {t.DeletedAtDestination, "deleted at the destination"}, {t.Failed, "failed"},
	} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return strings.Join(parts, ", ")
}

// watchReporter is the passes' reporter after the first: warnings go to
// the log, progress nowhere.
type watchReporter struct {
	migrate.NopReporter
	log *slog.Logger
}

func (w watchReporter) Warn(msg string) { w.log.Warn(msg) }

// idler waits between passes: in IDLE on the source's INBOX where the
// source is an IMAP server that has it (a change there ends the wait at
// once), else for the whole interval. Its connection is its own, opened
// again after a failure.
type idler struct {
	open func(context.Context) (migrate.Source, error)
	src  migrate.Source
	none bool // no IDLE here: just wait
}

var inbox = formats.Folder{Name: "INBOX", Path: []string{"INBOX"}}

func (i *idler) wait(ctx context.Context, d time.Duration) {
	start := time.Now()
	if !i.none && i.src == nil {
		if s, err := i.open(ctx); err == nil {
			i.src = s
		}
	}
	if w, ok := migrate.As[migrate.ChangeWaiter](i.src); ok && !i.none {
		err := w.WaitChange(ctx, inbox, d)
		if err == nil || ctx.Err() != nil {
			return
		}
		i.none = errors.Is(err, migrate.ErrNoIdle)
		i.close() // lost: a new connection next time
	}
	select {
	case <-ctx.Done():
	case <-time.After(d - time.Since(start)):
	}
}

func (i *idler) close() {
	if i.src != nil {
		i.src.Close()
		i.src = nil
	}
}

// watchAuthTries is how many passes in a row with a refused login end a
// watch whose logins have worked before. One refusal does not: a server
// whose authentication is down for a moment refuses a good password (Dovecot
// answers "Authentication failed." while its auth process restarts, or as
// the server is being stopped). Three, with the growing wait between them,
// try a changed password three times in a few minutes (at the default
// interval): too few to lock an account, and the watch does not go on
// knocking forever.
const watchAuthTries = 3
