package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// argsError is the usage error of a command given the wrong number of
// arguments, in the words of its Use line: "migrate: wants SOURCE DEST (2
// arguments), got 1". It names the command once; main adds "mailferry: ".
func argsError(cmd *cobra.Command, args []string) error {
	want := strings.Fields(cmd.Use)[1:]
	got := plural(len(args), "argument")
	if len(want) == 0 {
		return &usageError{fmt.Errorf("%s: takes no arguments, got %s", cmd.Name(), got)}
	}
	return &usageError{fmt.Errorf("%s: wants %s (%s), got %s", cmd.Name(), strings.Join(want, " "), plural(len(want), "argument"), got)}
}

// unknownCommand rewrites cobra's "unknown command" error, whose
// suggestions come on lines of their own after a tab, as one line:
// `unknown command "migrat"; did you mean migrate? ("mailferry --help" lists the commands)`.
func unknownCommand(root *cobra.Command, err error) error {
	lines := strings.Split(err.Error(), "\n")
	first := strings.TrimSuffix(lines[0], ` for "`+root.Name()+`"`)
	var sugg []string
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "\t") {
			sugg = append(sugg, strings.TrimSpace(l))
		}
	}
	msg := first
	if len(sugg) > 0 {
		msg += "; did you mean " + strings.Join(sugg, " or ") + "?"
	}
	msg += fmt.Sprintf(` (%q lists the commands)`, root.Name()+" --help")
	return &usageError{fmt.Errorf("%s", msg)}
}

// flagError is every command's flag error, a usage error; a mistyped long
// flag gets the nearest one as a suggestion: "unknown flag --delete-sorce;
// did you mean --delete-source?".
func flagError(cmd *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return &usageError{err}
	}
	msg := "unknown flag --" + name
	if near := nearestFlag(cmd.Flags(), name); near != "" {
		msg += "; did you mean --" + near + "?"
	}
	return &usageError{fmt.Errorf("%s", msg)}
}

// nearestFlag is the flag of fs closest to name: at most two edits away
// (or one of which name is a prefix), "" when none is.
func nearestFlag(fs *pflag.FlagSet, name string) string {
	best, bestD := "", 3
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		d := editDistance(name, f.Name)
		if strings.HasPrefix(f.Name, name) && len(name) >= 3 && d > 1 {
			d = 2
		}
		if d < bestD {
			best, bestD = f.Name, d
		}
	})
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
