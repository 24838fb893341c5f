package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mailferry/mailferry/formats"
)

// Folder layouts the Maildir store reads (it writes Maildir++ only):
//
//	Maildir++ (Dovecot's default, Courier, mbsync "SubFolders Maildir++",
//	Python's mailbox.Maildir, mailferry): ROOT is INBOX, folder [A B] is
//	ROOT/.A.B. Its Name is the directory name without the dot ("A.B").
//
//	Nested (Dovecot LAYOUT=fs, mbsync "SubFolders Verbatim"): folder [A B]
//	is ROOT/A/B/{cur,new,tmp}; INBOX is ROOT itself, or ROOT/INBOX when
//	ROOT is no Maildir (mbsync with "Inbox ROOT/INBOX"). Its Name is the
//	relative path with a leading slash ("/A/B"), so that it can never be
//	taken for a Maildir++ name.
//
// A tree may mix both; each folder is read where it is. Component names
// are decoded by decodeDirComponent. Everything that had to be guessed is
// said by warn (see Maildir.Warnings).

// maildirFolder is one folder directory found by Folders.
type maildirFolder struct {
	path []string
	name string // the store's spelling: "INBOX", "A.B" or "/A/B"
	dir  string // relative to root, slash-separated ("" for the root)
}

// inboxDirOf returns where INBOX lives below root: "" (root itself) unless
// root is no Maildir and ROOT/INBOX is one.
func inboxDirOf(root string) string {
	if !isMaildirDir(root) && isMaildirDir(filepath.Join(root, "INBOX")) {
		return "INBOX"
	}
	return ""
}

// isMaildirDir reports whether dir has a cur/ or new/ directory.
func isMaildirDir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// plusDir returns the Maildir++ directory (relative to root) and Name of a
// folder path as this store writes it: each component encoded with
// formats.EncodeMaildirComponent (modified UTF-7), joined with '.'. legacy
// is the same with formats.EncodeFSComponent (raw UTF-8), the spelling of
// archives written before mailferry used modified UTF-7.
func plusDir(p []string) (dir, name, legacy string) {
	enc := make([]string, len(p))
	old := make([]string, len(p))
	for i, c := range p {
		if i == 0 && strings.EqualFold(c, "INBOX") {
			c = "INBOX"
		}
		enc[i] = formats.EncodeMaildirComponent(c)
		old[i] = formats.EncodeFSComponent(c)
	}
	name = strings.Join(enc, ".")
	return "." + name, name, "." + strings.Join(old, ".")
}

// resolve returns the directory (relative to root) and Name of a folder
// path. A folder that exists in the legacy raw UTF-8 spelling (and not in
// modified UTF-7) is that directory, so that an old archive is appended to
// where it is rather than getting a second folder of the same name.
func (m *Maildir) resolve(p []string) (dir, name string, err error) {
	if len(p) == 0 {
		return "", "", errors.New("maildir: empty folder path")
	}
	if formats.IsInbox(p) {
		return m.inboxDir, "INBOX", nil
	}
	dir, name, legacy := plusDir(p)
	if legacy != dir && !dirExists(filepath.Join(m.root, dir)) && dirExists(filepath.Join(m.root, legacy)) {
		return legacy, legacy[1:], nil
	}
	return dir, name, nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// dirOf resolves a folder to its directory relative to root: by Name when
// set (the store's own spelling, as Folders and Ensure return it), else by
// Path. A Name that could leave root is refused.
func (m *Maildir) dirOf(f formats.Folder) (string, error) {
	switch {
	case f.Name == "INBOX":
		return m.inboxDir, nil
	case f.Name == "":
		dir, _, err := m.resolve(f.Path)
		return dir, err
	case strings.HasPrefix(f.Name, "/"):
		for _, c := range strings.Split(f.Name[1:], "/") {
			if c == "" || c[0] == '.' || strings.ContainsRune(c, 0) {
				return "", fmt.Errorf("maildir: bad folder name %q", f.Name)
			}
		}
		return f.Name[1:], nil
	case f.Name == "." || strings.ContainsAny(f.Name, "/\x00"):
		return "", fmt.Errorf("maildir: bad folder name %q", f.Name)
	}
	return "." + f.Name, nil
}

// decodeDirComponent turns one component of a folder directory name into
// the folder name's component, trying in turn: mailferry's own encoding
// (modified UTF-7 over the fsname escapes); plain modified UTF-7 (Dovecot,
// Courier, mbsync: "50%" stays "50%"); mailferry's legacy raw UTF-8 with
// fsname escapes (also what Python's mailbox writes for a plain name); and
// the bytes as they are. It returns a warning for a name no rule fits.
func decodeDirComponent(c string) (string, string) {
	if d, err := formats.DecodeMaildirComponent(c); err == nil {
		return d, ""
	}
	if d, err := formats.DecodeMailboxUTF7(c); err == nil {
		return d, ""
	}
	if d, err := formats.DecodeFSComponent(c); err == nil {
		if strings.ContainsRune(d, '&') {
			return d, fmt.Sprintf("%q is not modified UTF-7 (as Dovecot would read it): read as UTF-8", c)
		}
		return d, ""
	}
	if !utf8.ValidString(c) {
		return c, fmt.Sprintf("%q is neither modified UTF-7 nor UTF-8: its bytes are kept as they are", c)
	}
	return c, ""
}

// Folders lists INBOX and every folder of the tree (Maildir++ and nested
// layouts, see above), parents before children, with Messages and Bytes
// filled. A parent that exists only through its children is listed with
// NoSelect. Ambiguities (a name in no known encoding, two directories for
// one folder, a mixed layout, a directory with no Maildir in it) are
// warnings.
func (m *Maildir) Folders(ctx context.Context) ([]formats.Folder, error) {
	ents, err := os.ReadDir(m.root)
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	found := []maildirFolder{{path: []string{"INBOX"}, name: "INBOX", dir: m.inboxDir}}
	var plus, nested int
	for _, e := range ents {
		name := e.Name()
		switch {
		case !e.IsDir() || name == "cur" || name == "new" || name == "tmp":
		case name == m.inboxDir:
		case len(name) >= 2 && name[0] == '.' && name != "..":
			plus++
			found = append(found, maildirFolder{path: m.plusPath(name[1:]), name: name[1:], dir: name})
		case name[0] != '.':
			n := len(found)
			found = m.walkNested(name, []string{m.component(name, name)}, found, 0)
			if len(found) > n {
				nested++
			} else {
				m.warnNoMaildir(name)
			}
		}
	}
	if plus > 0 && nested > 0 {
		m.warn("the tree mixes Maildir++ folders (.A.B) and nested folders (A/B): both are read")
	}
	return m.folderList(found)
}

// plusPath splits a Maildir++ name into decoded components.
func (m *Maildir) plusPath(name string) []string {
	comps := strings.Split(name, ".")
	for i, c := range comps {
		comps[i] = m.component(c, "."+name)
	}
	if strings.EqualFold(comps[0], "INBOX") {
		comps[0] = "INBOX"
	}
	return comps
}

// component decodes one directory name component, warning when it had to
// guess; dir names the directory in the warning.
func (m *Maildir) component(c, dir string) string {
	d, w := decodeDirComponent(c)
	if w != "" {
		m.warn(fmt.Sprintf("folder directory %s: %s", dir, w))
	}
	return d
}

// maxNestedDepth bounds the walk of a nested layout.
const maxNestedDepth = 32

// walkNested adds the nested folder at rel (slash-separated, relative to
// root) and those below it. A directory that is no Maildir and has none
// below it is left out with a warning (the topmost such one is named).
func (m *Maildir) walkNested(rel string, p []string, found []maildirFolder, depth int) []maildirFolder {
	abs := filepath.Join(m.root, filepath.FromSlash(rel))
	n := len(found)
	if isMaildirDir(abs) {
		found = append(found, maildirFolder{path: p, name: "/" + rel, dir: rel})
	}
	ents, err := os.ReadDir(abs)
	if err != nil || depth >= maxNestedDepth {
		return found
	}
	var empty []string
	for _, e := range ents {
		c := e.Name()
		if !e.IsDir() || c == "cur" || c == "new" || c == "tmp" {
			continue
		}
		sub := path.Join(rel, c)
		if c[0] == '.' {
			if isMaildirDir(filepath.Join(abs, c)) {
				m.warn(fmt.Sprintf("%s: a Maildir++ folder inside a nested folder is not read", sub))
			}
			continue
		}
		before := len(found)
		found = m.walkNested(sub, append(slices.Clip(p), m.component(c, sub)), found, depth+1)
		if len(found) == before {
			empty = append(empty, sub)
		}
	}
	if len(found) > n { // else the caller names this directory
		for _, e := range empty {
			m.warnNoMaildir(e)
		}
	}
	return found
}

func (m *Maildir) warnNoMaildir(rel string) {
	m.warn(fmt.Sprintf("%s: a directory with no Maildir in it: skipped", rel))
}

// folderList turns the found directories into the folder list: counts
// filled, one folder per path (a second directory for the same folder is
// left out with a warning), NoSelect parents added, sorted.
func (m *Maildir) folderList(found []maildirFolder) ([]formats.Folder, error) {
	infos, err := m.countFolders(found)
	if err != nil {
		return nil, err
	}
	byKey := map[string]int{}
	var out []formats.Folder
	for j, mf := range found {
		k := strings.Join(mf.path, "\x00")
		if i, ok := byKey[k]; ok {
			if !out[i].NoSelect {
				m.warn(fmt.Sprintf("folder %s is in two directories, %s and %s: only %s is read",
					formats.DisplayName(mf.path), dirLabel(out[i].Name), dirLabel(mf.name), dirLabel(out[i].Name)))
				continue
			}
		}
		f := infos[j]
		if i, ok := byKey[k]; ok {
			out[i] = f
		} else {
			byKey[k] = len(out)
			out = append(out, f)
		}
		for i := 1; i < len(mf.path); i++ {
			pk := strings.Join(mf.path[:i], "\x00")
			if _, ok := byKey[pk]; !ok {
				byKey[pk] = len(out)
				out = append(out, formats.Folder{Path: slices.Clone(mf.path[:i]), Name: parentName(mf, i), NoSelect: true, Validity: 1})
			}
		}
	}
	slices.SortFunc(out, func(a, b formats.Folder) int { return formats.ComparePaths(a.Path, b.Path) })
	return out, nil
}

// countFolders takes folderInfo of each found folder that folderList
// reads (the first directory of each path), several folders at once:
// counting is a listing of every file name, and a rerun that copies
// nothing into a million-message archive spent 0.52 s of its 0.64 s
// listing its twelve folders one after the other (pprof: getdents64, 81%).
// The others are left zero.
func (m *Maildir) countFolders(found []maildirFolder) ([]formats.Folder, error) {
	infos := make([]formats.Folder, len(found))
	var todo []int
	seen := map[string]bool{}
	for j, mf := range found {
		if k := strings.Join(mf.path, "\x00"); !seen[k] {
			seen[k] = true
			todo = append(todo, j)
		}
	}
	err := runParallel(len(todo), countWorkers(), func(i int) error {
		mf := found[todo[i]]
		f, err := m.folderInfo(mf.dir, formats.Folder{Path: mf.path, Name: mf.name})
		infos[todo[i]] = f
		return err
	})
	return infos, err
}

// countWorkers is how many folders countFolders lists at once: one per
// processor, at most four (each is a stream of getdents64 calls, which
// take a processor each).
func countWorkers() int { return min(runtime.GOMAXPROCS(0), 4) }

// parentName is the Name of the i-component parent of a found folder, in
// the folder's own layout.
func parentName(mf maildirFolder, i int) string {
	if strings.HasPrefix(mf.name, "/") {
		return "/" + strings.Join(strings.Split(mf.dir, "/")[:i], "/")
	}
	return strings.Join(strings.Split(mf.name, ".")[:i], ".")
}

// dirLabel names a folder's directory for a warning.
func dirLabel(name string) string {
	switch {
	case name == "INBOX":
		return "the root"
	case strings.HasPrefix(name, "/"):
		return name[1:] + "/"
	}
	return "." + name
}
