package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mailferry/mailferry/formats"
)

func newFoldersCommand(env *environment) *cobra.Command {
	var sf secretFlags
	var tf tlsFlags
	var shared bool
	sf.side = "src"
	cmd := &cobra.Command{
		Use:   "folders SOURCE",
		Short: "List folders: name, special use, messages, bytes",
		Long: `folders lists the folders of SOURCE with their special use, message count and
size: the folders migrate and archive copy. SOURCE is any endpoint: an IMAP
server (imap://, imaps://), a POP3 server (pop3://, pop3s://: it has only
INBOX), a Maildir++ tree (maildir:PATH) or mbox files (mbox:DIR, a directory
of NAME.mbox files, or mbox:FILE.mbox, one folder). Folders in other users' and
shared namespaces (RFC 2342, e.g. shared/alice/Team) are listed only with
--shared-folders, marked "shared" in the NAMESPACE column.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ep, err := parseEndpoint(args[0])
			if err != nil {
				return err
			}
			if err := resolveServer(env, ep, &sf, &tf); err != nil {
				return err
			}
			src, err := openSource(ep)(cmd.Context())
			if err != nil {
				return err
			}
			defer src.Close()
			folders, err := src.Folders(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(env.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FOLDER\tSPECIAL-USE\tMESSAGES\tBYTES\tNAMESPACE")
			left := 0
			for _, f := range folders {
				ns := "personal"
				if f.Shared {
					ns = "shared"
					if !shared {
						if !f.NoSelect {
							left++
						}
						continue
					}
				}
				if f.NoSelect {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t%s\n", formats.DisplayName(f.Path), f.SpecialUse, ns)
					continue
				}
				bytes := f.Bytes
				if bytes == 0 && f.Messages > 0 {
					_, msgs, err := src.List(cmd.Context(), f)
					if err != nil {
						return err
					}
					for _, m := range msgs {
						bytes += max(m.Size, 0)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", formats.DisplayName(f.Path), f.SpecialUse, f.Messages, humanBytes(bytes), ns)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if left > 0 {
				fmt.Fprintf(env.stderr, "note: %d folders in other users' or shared namespaces not shown; --shared-folders lists them\n", left)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&shared, "shared-folders", false, "also list folders from other users' and shared namespaces (RFC 2342), marked shared")
	fl.StringVar(&sf.tlsMode, "src-tls", "", "TLS, `MODE` tls | starttls | none (default from the scheme)")
	fl.StringVar(&tf.caFile, "ca-file", "", "extra trusted CA certificates (PEM) in `FILE`")
	fl.BoolVar(&tf.insecureSkip, "insecure-skip-verify", false, "accept any certificate (dangerous)")
	fl.StringVar(&sf.file, "src-password-file", "", "read the password from `FILE` (first line); used instead of MAILFERRY_SRC_PASSWORD")
	fl.StringVar(&sf.cmd, "src-password-cmd", "", "run `CMD` and use its first line as the password (not with --src-password-file); used instead of MAILFERRY_SRC_PASSWORD")
	fl.StringVar(&sf.tokenCmd, "src-oauth2-token-cmd", "", "run `CMD` for an OAuth2 access token (XOAUTH2/OAUTHBEARER)")
	setHelp(cmd, `  mailferry folders imaps://alice@mail.example
  mailferry folders imaps://alice@mail.example --shared-folders
  mailferry folders pop3s://alice@mail.example
  mailferry folders maildir:~/Maildir
  mailferry folders mbox:~/mail
  mailferry folders mbox:~/saved.mbox`, exitHelpFolders)
	return cmd
}
