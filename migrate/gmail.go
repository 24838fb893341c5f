package migrate

import (
	"context"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// gmailSource lists a Gmail account's folders the way the gmail preset
// wants them: special uses filled in from [Gmail]/ names where the server
// gave none, and the Starred and Important views left out.
type gmailSource struct {
	Source
	include map[string]bool // --include values: a view named exactly stays
}

// GmailSource lists src's folders as a Gmail account's are meant (the
// gmail preset): [Gmail]/ folders get their special use by name where the
// server gave none, and the Starred and Important views are left out unless
// include names them exactly.
func GmailSource(src Source, include []string) Source {
	g := &gmailSource{Source: src, include: map[string]bool{}}
	for _, name := range include {
		g.include[name] = true
	}
	return g
}

// Unwrap returns the source inside (its Deleter and other capabilities).
func (g *gmailSource) Unwrap() Source { return g.Source }

// gmailNames are the English names of the [Gmail]/ tree and their use.
var gmailNames = map[string]string{
	"all mail":  `\All`,
	"sent mail": `\Sent`,
	"drafts":    `\Drafts`,
	"spam":      `\Junk`,
	"trash":     `\Trash`,
	"bin":       `\Trash`, // Gmail in British English
	"starred":   `\Flagged`,
	"important": `\Important`,
}

// gmailUse is the special use of a [Gmail]/ or [Google Mail]/ folder by its
// name, or "".
func gmailUse(path []string) string {
	if len(path) != 2 || (path[0] != "[Gmail]" && path[0] != "[Google Mail]") {
		return ""
	}
	return gmailNames[strings.ToLower(path[1])]
}

func (g *gmailSource) Folders(ctx context.Context) ([]formats.Folder, error) {
	fs, err := g.Source.Folders(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]formats.Folder, 0, len(fs))
	for _, f := range fs {
		byName := gmailUse(f.Path)
		if isGmailView(f.SpecialUse) || isGmailView(byName) {
			if !g.include[formats.DisplayName(f.Path)] {
				continue
			}
		} else if f.SpecialUse == "" && byName != "" {
			f.SpecialUse = byName
		}
		out = append(out, f)
	}
	return out, nil
}

// isGmailView reports whether a special use marks one of Gmail's views
// (\Flagged: Starred; \Important: Important).
func isGmailView(use string) bool { return use == `\Flagged` || use == `\Important` }
