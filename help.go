package main

// What every command's --help says beyond its description: examples, the
// flags that command takes (wrapped to 80 columns) and its exit codes.
// testdata/help/*.golden holds each command's help (TestHelpGolden).

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// usageTemplate is cobra's, without aliases, groups or inherited flags
// (mailferry has none), with flag help wrapped to 80 columns and an "Exit
// status:" section from the command's exitStatus annotation.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{wrappedFlags .LocalFlags}}{{end}}{{with index .Annotations "exitStatus"}}

Exit status:
{{.}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} COMMAND --help" for more about a command.{{end}}
`

func init() {
	cobra.AddTemplateFunc("wrappedFlags", func(fs *pflag.FlagSet) string {
		return strings.TrimRight(fs.FlagUsagesWrapped(80), " \n")
	})
}

// setHelp gives cmd its examples and exit codes.
func setHelp(cmd *cobra.Command, examples, exitStatus string) {
	cmd.Example = strings.TrimRight(examples, "\n")
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations["exitStatus"] = strings.TrimRight(exitStatus, "\n")
}

// Exit codes as each command means them (CLI.md).
const (
	exitHelpCopy = `  0    everything selected is at the destination
  1    stopped by an error (connection, authentication, disk); a rerun resumes
       safely
  2    usage error: nothing was done
  3    finished, but some messages failed; each is named in the report
  130  interrupted (Ctrl-C or SIGTERM): what was copied is recorded; run the
       same command again to resume`
	exitHelpBatch = `
With --batch: 3 when some accounts did not complete (each is named), 1 when
none did.`
	exitHelpVerify = `  0    the archive is whole
  1    something is wrong (each problem is printed), or the archive could not
       be read
  2    usage error
  130  interrupted`
	exitHelpFolders = `  0    the folders were listed
  1    stopped by an error (connection, authentication, a store that cannot
       be read)
  2    usage error: nothing was done
  130  interrupted`
	exitHelpDemo = `  0    the demo migrated, checked and reran
  1    the demo failed (the error says why)
  2    usage error
  130  interrupted`
	exitHelpVersion = `  0    printed
  2    usage error`
	exitHelpRoot = `  0    everything selected is at the destination
  1    stopped by an error (a rerun resumes safely)
  2    usage error: nothing was done
  3    finished, but some messages failed (each is named in the report)
  130  interrupted (Ctrl-C or SIGTERM): what was stored is recorded; run the
       same command again to resume`
)
