package migrate

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Mapping renames a folder and its subfolders (--map OLD=NEW).
type Mapping struct {
	Old, New []string
}

// ParseMapping parses OLD=NEW with "/" between levels.
func ParseMapping(s string) (Mapping, error) {
	old, nw, ok := strings.Cut(s, "=")
	if !ok || old == "" || nw == "" {
		return Mapping{}, Usagef("--map wants OLD=NEW, got %q", s)
	}
	return Mapping{Old: splitUser(old), New: splitUser(nw)}, nil
}

// splitUser splits a folder name as users type it: "/" between levels.
func splitUser(s string) []string {
	p := strings.Split(strings.Trim(s, "/"), "/")
	if strings.EqualFold(p[0], "INBOX") {
		p[0] = "INBOX"
	}
	return p
}

// PlanOptions select and rename folders.
type PlanOptions struct {
	Include, Exclude []string // globs over display names: * matches anything, "/" included
	Maps             []Mapping
	Prefix           string // "/"-separated; empty for none
	// SharedFolders also selects folders in other users' and shared
	// namespaces (formats.Folder.Shared; --shared-folders). They keep
	// their whole name, namespace prefix included ("shared/alice/Team"),
	// so they stay apart from the user's own.
	SharedFolders bool
}

// PlannedFolder is one source folder and where it goes.
type PlannedFolder struct {
	Source formats.Folder
	Dest   []string
	Note   string
}

// wellKnown are names that mean a special use where a server does not say.
var wellKnown = map[string][]string{
	`\Sent`:    {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Gesendet", "Gesendete Objekte"},
	`\Drafts`:  {"Drafts", "Draft", "Entwürfe"},
	`\Trash`:   {"Trash", "Deleted Items", "Deleted Messages", "Bin", "Papierkorb"},
	`\Junk`:    {"Junk", "Spam", "Junk E-mail", "Junk Email", "Bulk Mail"},
	`\Archive`: {"Archive", "Archives"},
}

func useOfName(path []string) string {
	if len(path) != 1 {
		return ""
	}
	for use, names := range wellKnown {
		for _, n := range names {
			if strings.EqualFold(n, path[0]) {
				return use
			}
		}
	}
	return ""
}

// Plan decides, for every selectable source folder the options select,
// the destination path. It maps special-use folders to the destination's
// folder of the same use (by attribute, then by well-known name), applies
// --map (longest OLD first) and --prefix, and notes renamed components.
func Plan(src, dst []formats.Folder, dstSep rune, opts PlanOptions) ([]PlannedFolder, error) {
	inc, err := compileGlobs(opts.Include)
	if err != nil {
		return nil, err
	}
	exc, err := compileGlobs(opts.Exclude)
	if err != nil {
		return nil, err
	}
	useMaps := specialUseMaps(src, dst)
	maps := append(append([]Mapping(nil), opts.Maps...), useMaps...)
	sort.SliceStable(maps, func(i, j int) bool { return len(maps[i].Old) > len(maps[j].Old) })
	var prefix []string
	if opts.Prefix != "" {
		prefix = splitUser(opts.Prefix)
	}

	var out []PlannedFolder
	seen := map[string]string{}
	for _, f := range src {
		if f.NoSelect || f.Shared && !opts.SharedFolders {
			continue
		}
		name := formats.DisplayName(f.Path)
		if len(inc) > 0 && !matchAny(inc, name) {
			continue
		}
		if matchAny(exc, name) {
			continue
		}
		dest := append([]string(nil), f.Path...)
		for _, m := range maps {
			if formats.HasPrefix(f.Path, m.Old) {
				dest = append(append([]string(nil), m.New...), f.Path[len(m.Old):]...)
				break
			}
		}
		if len(prefix) > 0 {
			dest = append(append([]string(nil), prefix...), dest...)
		}
		pf := PlannedFolder{Source: f, Dest: dest}
		joined, renamed := formats.JoinFolder(dest, dstSep)
		if renamed {
			pf.Note = fmt.Sprintf("a name part holds the destination's separator %q: stored as %q", string(dstSep), joined)
			dest2 := make([]string, len(dest))
			for i, c := range dest {
				dest2[i], _ = formats.ReplaceSeparator(c, dstSep)
			}
			pf.Dest = dest2
		}
		key := strings.ToLower(joined)
		if other, ok := seen[key]; ok {
			pf.Note = strings.TrimPrefix(pf.Note+"; ", "; ") + fmt.Sprintf("shares destination %q with source folder %q", joined, other)
		}
		seen[key] = name
		out = append(out, pf)
	}
	// INBOX and special-use folders first (they win under --dedup account).
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].Source) < rank(out[j].Source) })
	return out, nil
}

// specialUseMaps maps each special-use folder of the source (by attribute,
// or by a well-known name where the source has no attributes at all) to the
// destination's folder of the same use, so that its subfolders follow.
func specialUseMaps(src, dst []formats.Folder) []Mapping {
	srcHasUse := false
	for _, f := range src {
		if f.SpecialUse != "" {
			srcHasUse = true
		}
	}
	// Destination folder for each special use.
	dstUse := map[string][]string{}
	for _, f := range dst {
		if f.SpecialUse != "" && !f.NoSelect && !f.Shared && dstUse[f.SpecialUse] == nil {
			dstUse[f.SpecialUse] = f.Path
		}
	}
	for _, f := range dst {
		if use := useOfName(f.Path); use != "" && dstUse[use] == nil && !f.NoSelect && !f.Shared {
			dstUse[use] = f.Path
		}
	}
	var useMaps []Mapping
	for _, f := range src {
		if f.Shared { // someone else's Sent is not the user's
			continue
		}
		use := f.SpecialUse
		if use == "" && !srcHasUse {
			use = useOfName(f.Path)
		}
		if to := dstUse[use]; to != nil && use != "" && !equalPath(to, f.Path) {
			useMaps = append(useMaps, Mapping{Old: f.Path, New: to})
		}
	}
	return useMaps
}

// LeftOut counts the selectable folders --include and --exclude select
// that Plan leaves out because they are in other users' or shared
// namespaces and opts.SharedFolders is off.
func LeftOut(src []formats.Folder, opts PlanOptions) int {
	if opts.SharedFolders {
		return 0
	}
	inc, err1 := compileGlobs(opts.Include)
	exc, err2 := compileGlobs(opts.Exclude)
	if err1 != nil || err2 != nil {
		return 0
	}
	n := 0
	for _, f := range src {
		name := formats.DisplayName(f.Path)
		if f.Shared && !f.NoSelect && (len(inc) == 0 || matchAny(inc, name)) && !matchAny(exc, name) {
			n++
		}
	}
	return n
}

// warnLeftOut says once how many folders of other users and shared
// namespaces the run leaves out, and how to include them.
func (e *engine) warnLeftOut(src []formats.Folder) {
	if n := LeftOut(src, e.opts.PlanOptions); n > 0 {
		e.rep.Warn(fmt.Sprintf("%d folders in other users' or shared namespaces left out (someone else's mail); --shared-folders copies them (never deleting from them)", n))
	}
}

func rank(f formats.Folder) int {
	switch {
	case formats.IsInbox(f.Path):
		return 0
	case f.SpecialUse == `\All`:
		return 3 // All Mail last, so that labels win
	case f.SpecialUse != "" || useOfName(f.Path) != "":
		return 1
	}
	return 2
}

func equalPath(a, b []string) bool {
	return len(a) == len(b) && formats.HasPrefix(a, b)
}

func compileGlobs(globs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, g := range globs {
		var b strings.Builder
		b.WriteString("^")
		for _, r := range g {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, Usagef("bad folder pattern %q: %v", g, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func matchAny(res []*regexp.Regexp, name string) bool {
	for _, re := range res {
		if re.MatchString(name) {
			return true
		}
	}
	return false
}
