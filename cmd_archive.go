package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/archive"
)

func newArchiveCommand(env *environment) *cobra.Command {
	var f copyFlags
	var format string
	cmd := &cobra.Command{
		Use:   "archive SOURCE DIR",
		Short: "Copy SOURCE into a local Maildir or mbox archive with a manifest",
		Long: `archive copies every folder and message of SOURCE into DIR, a Maildir++
tree (--format maildir, the default) or mbox files in DIR/mail, laid out as a
Dovecot mbox root (--format mbox), and records each message in
DIR/MANIFEST.jsonl: where it is, its size, the SHA-256 of the exact bytes the
source served, its flags, internal date and source folder. Each manifest line
carries the hash of the line before it; the run ends by printing the chain's
last hash, which you can keep elsewhere and give to 'mailferry verify
--last-hash'. A Maildir archive also gets SHA256SUMS, checkable with
sha256sum -c.

Run it again (every night, say) and it adds only what is new.`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "maildir" && format != "mbox" {
				return &usageError{fmt.Errorf("--format must be maildir or mbox, not %q", format)}
			}
			src, err := parseEndpoint(args[0])
			if err != nil {
				return err
			}
			dst, err := archiveDir(args[1], format, cmd.Flags().Changed("format"))
			if err != nil {
				return err
			}
			if st, err := os.Stat(dst.path); err == nil && !st.IsDir() {
				return &usageError{fmt.Errorf("%s exists and is not a directory", dst.path)}
			}
			opts, err := f.options(env)
			if err != nil {
				return err
			}
			if err := checkReportPath(f.report); err != nil {
				return err
			}
			if err := resolveServer(env, src, &f.src, &f.tls); err != nil {
				return f.reportEarlyError(src, dst, err)
			}
			return execute(cmd.Context(), env, &f, opts, src, dst)
		},
	}
	f.add(cmd)
	f.describeStateDir(cmd, env)
	cmd.Flags().StringVar(&format, "format", "maildir", "archive `FORMAT` maildir | mbox")
	setHelp(cmd, `  mailferry archive imaps://alice@mail.example ~/mail-archive
  mailferry archive imaps://alice@mail.example ~/mail-archive --format mbox
  mailferry archive pop3s://alice@mail.example mbox:~/pop --delete-source
  mailferry archive maildir:~/Maildir ~/mail-archive --since 2024-01-01`, exitHelpCopy)
	return cmd
}

func newVerifyCommand(env *environment) *cobra.Command {
	var opts archive.VerifyOptions
	cmd := &cobra.Command{
		Use:   "verify DIR",
		Short: "Check a local archive against its manifest",
		Long: `verify reads DIR/MANIFEST.jsonl, checks its hash chain against MANIFEST.head,
SHA256SUMS and the .len record of each mbox file, and re-hashes every message it
lists (--quick: checks only that each is there with its size). It names every
missing, altered or unlisted message, every stray file (in tmp/, cur/, new/ or
beside the mbox files) and every damaged manifest line. --last-hash also
catches a deliberate rewrite of all of these records together.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := archive.Verify(cmd.Context(), expandHome(args[0]), opts)
			if err != nil {
				return err
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(env.stdout, p.String())
			}
			for _, n := range rep.Notes {
				fmt.Fprintln(env.stderr, "note: "+n)
			}
			mode := "re-hashed"
			if opts.Quick {
				mode = "checked (presence and size)"
			}
			fmt.Fprintf(env.stdout, "%s archive %s: %s (%s) %s, chain head %s\n",
				rep.Format, rep.Dir, plural(rep.Messages, "message"), humanBytes(rep.Bytes), mode, rep.LastHash)
			if !rep.OK() {
				return fmt.Errorf("verify: %s in %s", plural(len(rep.Problems), "problem"), rep.Dir)
			}
			fmt.Fprintln(env.stdout, "OK")
			return nil
		},
	}
	cmd.Flags().BoolVar(&opts.Quick, "quick", false, "check presence and sizes only, do not re-hash")
	cmd.Flags().StringVar(&opts.LastHash, "last-hash", "", "the chain head printed by the archive run (`HASH`), to catch a consistently rewritten archive")
	setHelp(cmd, `  mailferry verify ~/mail-archive
  mailferry verify ~/mail-archive --quick
  mailferry verify ~/mail-archive --last-hash HASH   # the head archive printed`, exitHelpVerify)
	return cmd
}
