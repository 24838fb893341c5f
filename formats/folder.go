package formats

import (
	"slices"
	"strings"
)

// SeparatorReplacement stands in for a destination's hierarchy separator
// found inside one component of a source folder name ("a.b" from a server
// using "/" arriving at a server using "."). A server whose separator is
// itself "_" gets SeparatorFallback instead.
const (
	SeparatorReplacement = "_"
	SeparatorFallback    = "-"
)

// ReplaceSeparator returns one folder-name component with every occurrence
// of the separator sep replaced (sep 0, a flat namespace, stands for "/"),
// and whether anything was replaced.
func ReplaceSeparator(component string, sep rune) (string, bool) {
	s := string(sep)
	if sep == 0 {
		s = "/"
	}
	if !strings.Contains(component, s) {
		return component, false
	}
	r := SeparatorReplacement
	if s == r {
		r = SeparatorFallback
	}
	return strings.ReplaceAll(component, s, r), true
}

// SplitFolder splits a server's folder name into components with the
// server's hierarchy separator (0: a flat namespace). A first component that
// is INBOX in any case is spelled "INBOX".
func SplitFolder(name string, sep rune) []string {
	var path []string
	if sep == 0 {
		path = []string{name}
	} else {
		path = strings.Split(name, string(sep))
	}
	if strings.EqualFold(path[0], "INBOX") {
		path[0] = "INBOX"
	}
	return path
}

// JoinFolder joins components with a server's separator. A component that
// holds the separator has it replaced by SeparatorReplacement, and renamed
// reports that it happened, so that the caller can say so. With sep 0 the
// components are joined with "/" replaced the same way.
func JoinFolder(path []string, sep rune) (name string, renamed bool) {
	s := string(sep)
	if sep == 0 {
		s = "/"
	}
	parts := make([]string, len(path))
	for i, c := range path {
		var r bool
		parts[i], r = ReplaceSeparator(c, sep)
		renamed = renamed || r
	}
	if len(parts) > 0 && strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	return strings.Join(parts, s), renamed
}

// IsInbox reports whether path names INBOX itself.
func IsInbox(path []string) bool {
	return len(path) == 1 && strings.EqualFold(path[0], "INBOX")
}

// HasPrefix reports whether path starts with prefix, comparing the first
// component case-insensitively when it is INBOX.
func HasPrefix(path, prefix []string) bool {
	if len(prefix) > len(path) {
		return false
	}
	for i := range prefix {
		if path[i] == prefix[i] {
			continue
		}
		if i == 0 && strings.EqualFold(path[i], "INBOX") && strings.EqualFold(prefix[i], "INBOX") {
			continue
		}
		return false
	}
	return true
}

// ComparePaths orders folder paths as mailferry lists them everywhere:
// INBOX first, then component by component, so parents come before their
// children. It returns -1, 0 or +1 like slices.Compare.
func ComparePaths(a, b []string) int {
	if ai, bi := IsInbox(a), IsInbox(b); ai != bi {
		if ai {
			return -1
		}
		return 1
	}
	return slices.Compare(a, b)
}
