package main

import (
	"context"
	"fmt"
	"os"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
	"github.com/mailferry/mailferry/migrate/memserver"
)

func newDemoCommand(env *environment) *cobra.Command {
	var n int
	var progress string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "A complete migration between two embedded IMAP servers, no setup",
		Long: `demo starts two IMAP servers inside this process on 127.0.0.1, fills the first
with a few hundred realistic messages in nested folders with flags and dates,
migrates everything to the second with the real engine, proves that both hold
the same bytes, flags and dates, and runs the migration again to show that a
rerun copies nothing. Nothing leaves this machine.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), env, n, progress)
		},
	}
	cmd.Flags().IntVar(&n, "messages", 300, "`N` messages in the demo source")
	cmd.Flags().StringVar(&progress, "progress", "auto", "progress bar on stderr, `WHEN` auto | always | never (auto: on a terminal)")
	setHelp(cmd, `  mailferry demo
  mailferry demo --messages 5000 --progress always`, exitHelpDemo)
	return cmd
}

func runDemo(ctx context.Context, env *environment, n int, progress string) error {
	if n < 1 || n > 100000 {
		return &usageError{fmt.Errorf("--messages must be between 1 and 100000")}
	}
	src, err := memserver.Start("alice", "demo-source-password")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := memserver.Start("alice", "demo-destination-password")
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := src.Add(memserver.DemoMessages(1, n)); err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "mailferry-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)

	srcEP := &endpoint{scheme: "imap", server: mailconn.ServerConfig{Addr: src.Addr, User: src.User, Password: src.Password, TLS: mailconn.TLSNone}}
	dstEP := &endpoint{scheme: "imap", server: mailconn.ServerConfig{Addr: dst.Addr, User: dst.User, Password: dst.Password, TLS: mailconn.TLSNone}}
	f := &copyFlags{progress: progress, logLevel: "warn", stateDir: stateDir, dedup: "folder", jobs: 4}
	opts := migrate.Options{Jobs: 4, Dedup: migrate.DedupFolder}

	// Every line fits a terminal of 60 columns.
	fmt.Fprintf(env.stdout, "Two IMAP servers inside this process, on the loopback only:\n  source       %s\n  destination  %s\n", srcEP, dstEP)
	fmt.Fprintf(env.stdout, "\n== First run: mailferry migrate SOURCE DESTINATION\n")
	if err := execute(ctx, env, f, opts, srcEP, dstEP); err != nil {
		return err
	}
	a, err := src.Dump()
	if err != nil {
		return err
	}
	b, err := dst.Dump()
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Errorf("demo: the destination differs from the source")
	}
	total := 0
	for _, msgs := range a {
		total += len(msgs)
	}
	fmt.Fprintf(env.stdout, "\nChecked: %d folders, %d messages; every message has the\nsame SHA-256, flags and internal date on both servers.\n", len(a), total)
	fmt.Fprintf(env.stdout, "\n== Second run: the same command again\n")
	return execute(ctx, env, f, opts, srcEP, dstEP)
}
