package migrate

import (
	"fmt"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Children of INBOX between a server whose personal folders all live under
// "INBOX." (Cyrus and Courier as Debian ships them: NAMESPACE (("INBOX."
// "."))) and one where INBOX is a folder beside the others (Dovecot,
// Maildir, mbox).
//
// On an "INBOX."-prefixed server, INBOX.X is what its users call a
// subfolder of the Inbox, and also what any top-level folder X becomes
// (the prefix is hidden: its Folder.Path is {"X"}). So:
//
//   - Into such a server, the source's INBOX/X, with everything below it,
//     becomes INBOX.X (not INBOX.INBOX.X, a folder named "INBOX" inside the
//     Inbox), unless the source also has a folder X or one below X, which
//     becomes INBOX.X as well: then INBOX/X keeps its own level
//     (INBOX.INBOX.X) and its note says why. Two source folders are never
//     merged into one destination folder.
//   - From such a server nothing changes: INBOX.X is the folder X and
//     INBOX.INBOX.X is INBOX/X at the destination.
//   - Between two such servers nothing changes either (INBOX.INBOX.X stays
//     INBOX.INBOX.X).
//
// Folders that --map or --prefix renamed are left as the user named them.
// The rule looks only at the selected source folders of this run: a folder
// X that appears at the source later makes a later run keep INBOX/X apart
// from then on (INBOX.INBOX.X), its messages copied there once more.

// inboxPrefixed tells whether x (a Source or Sink) names every personal
// folder under "INBOX<sep>".
func inboxPrefixed(x any) bool {
	n, ok := As[FolderNamer](x)
	if !ok {
		return false
	}
	name := n.FolderName([]string{"x"})
	return len(name) == 7 && strings.EqualFold(name[:5], "INBOX") && name[6] == 'x'
}

// inboxChildren applies the rule above to plan (src is the Source, dst the
// Sink).
func inboxChildren(plan []PlannedFolder, src, dst any) []PlannedFolder {
	if !inboxPrefixed(dst) || inboxPrefixed(src) {
		return plan
	}
	child := func(pf PlannedFolder) bool { // INBOX/X..., as the source has it
		return len(pf.Dest) > 1 && strings.EqualFold(pf.Dest[0], "INBOX") &&
			!strings.EqualFold(pf.Dest[1], "INBOX") && equalPath(pf.Dest, pf.Source.Path)
	}
	// The first components X that folders other than INBOX/X... take.
	taken := map[string]string{} // lower-case X -> a source folder that takes it
	for _, pf := range plan {
		if !child(pf) && len(pf.Dest) > 0 {
			k := strings.ToLower(pf.Dest[0])
			if _, ok := taken[k]; !ok {
				taken[k] = formats.DisplayName(pf.Source.Path)
			}
		}
	}
	n, _ := As[FolderNamer](dst)
	out := make([]PlannedFolder, len(plan))
	for i, pf := range plan {
		out[i] = pf
		if !child(pf) {
			continue
		}
		moved := pf.Dest[1:]
		if other, ok := taken[strings.ToLower(moved[0])]; ok {
			note := fmt.Sprintf("kept apart as %q: %q is where the source's %q goes", n.FolderName(pf.Dest), n.FolderName(pf.Dest[1:2]), other)
			out[i].Note = strings.TrimPrefix(pf.Note+"; ", "; ") + note
			continue
		}
		out[i].Dest = append([]string(nil), moved...)
	}
	return out
}
