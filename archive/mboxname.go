package archive

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/mailferry/mailferry/formats"
)

// Where the mbox store keeps its files, and how folder names become file
// names. Three kinds of tree are met:
//
//   - an archive written by this version: the manifest in ROOT, the mail in
//     ROOT/mail, which is a Dovecot mbox root as Dovecot 2.3 lays one out
//     with its default settings (mail_location = mbox:ROOT/mail): INBOX is
//     the file "inbox", folder [A B] the file A/B, names on disk in IMAP's
//     modified UTF-7 ("Privé" is "Priv&AOk-"), a '.' kept as it is. Dovecot
//     lists every file and directory of its root except hidden ones it
//     made itself (.imap, .subscriptions) and names ending in ".lock", so
//     the length record of A/B is the hidden file A/.B.len.lock (checked
//     with Dovecot 2.3.19: it lists ".x" and "x.len", not ".x.len.lock").
//     mbox cannot hold a folder with messages and subfolders under one
//     name (A is a file or a directory): the one made second gets ".mbox"
//     added (the file A.mbox beside the directory A, or the directory
//     A.mbox beside the file A), and reading takes ".mbox" away again.
//   - an archive written before (no ROOT/mail): NAME.mbox files with
//     NAME.mbox.len records in ROOT, names encoded by
//     formats.EncodeFSComponent. It stays in that layout: new folders are
//     made the same way, existing ones appended to.
//   - anyone else's directory of mbox files (Dovecot's mbox root, mutt's
//     ~/Mail): every file that starts like an mbox is a folder, named by
//     its path with a ".mbox" suffix taken away; hidden entries (Dovecot's
//     .imap index directories), "*.lock" files and the archive's own files
//     are skipped, and any other file is skipped with a warning.

// mboxMailDir is the directory of an archive's ROOT that holds the mail.
const mboxMailDir = "mail"

// mboxHiddenLen names a length record that Dovecot does not list.
const mboxHiddenLen = ".len.lock"

// mboxInboxFile is INBOX's file in a Dovecot mbox root.
const mboxInboxFile = "inbox"

// mboxLayout tells where the folder files of the store at root live: tree
// is the directory holding them, legacy that root is an archive of an
// earlier version (NAME.mbox files beside the manifest).
func mboxLayout(root string) (tree string, legacy bool) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return filepath.Join(root, mboxMailDir), false // made fresh
	}
	hasMail, topMbox, other, archive := false, false, false, false
	for _, e := range ents {
		switch n := e.Name(); {
		case n == mboxMailDir && e.IsDir():
			hasMail = true
		case archiveFile(n):
			archive = true
		case strings.HasPrefix(n, "."):
		case strings.HasSuffix(n, mboxSuffix) && e.Type().IsRegular():
			topMbox, other = true, true
		default:
			other = true
		}
	}
	switch {
	case hasMail && (!topMbox || hasHiddenLen(filepath.Join(root, mboxMailDir))) || !other && !hasMail:
		// This version's archive (a stray file beside mail/ changes
		// nothing), or one to be made (empty, or a manifest only).
		return filepath.Join(root, mboxMailDir), false
	case archive || topMbox || hasMboxFile(root):
		return root, true
	}
	return root, false
}

// hasHiddenLen reports whether a length record of this version lies
// anywhere below dir.
func hasHiddenLen(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), mboxHiddenLen) {
			return found
		}
		return nil
	})
	return err == found
}

// hasMboxFile reports whether a NAME.mbox file lies anywhere below dir.
func hasMboxFile(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(d.Name(), mboxSuffix) {
			return found
		}
		return nil
	})
	return err == found
}

// mboxSidecarPath returns the length record of the folder file abs: the
// one that exists (an earlier version's NAME.mbox.len, or the hidden one),
// or else the hidden one, where a new record goes.
func mboxSidecarPath(abs string) string {
	dir, base := filepath.Split(abs)
	hidden := filepath.Join(dir, "."+base+mboxHiddenLen)
	old := abs + mboxLenSuffix
	if _, err := os.Lstat(hidden); err == nil {
		return hidden
	}
	if strings.HasSuffix(base, mboxSuffix) {
		if _, err := os.Lstat(old); err == nil {
			return old
		}
	}
	return hidden
}

// mboxSidecarRel is the length record of the folder file rel (relative to
// root, slash-separated), relative to root.
func mboxSidecarRel(root, rel string) string {
	abs := mboxSidecarPath(filepath.Join(root, filepath.FromSlash(rel)))
	if r, err := filepath.Rel(root, abs); err == nil {
		return filepath.ToSlash(r)
	}
	return rel + mboxLenSuffix
}

// mboxSidecarTarget returns the folder file a length record (by name,
// relative and slash-separated) belongs to.
func mboxSidecarTarget(rel string) (string, bool) {
	dir, base := path.Split(rel)
	if t, ok := strings.CutSuffix(base, mboxHiddenLen); ok && strings.HasPrefix(t, ".") && len(t) > 1 {
		return dir + t[1:], true
	}
	if strings.HasSuffix(base, mboxSuffix+mboxLenSuffix) {
		return strings.TrimSuffix(rel, mboxLenSuffix), true
	}
	return "", false
}

// encodeMboxComponent is the file name of one folder component, as Dovecot
// names it: modified UTF-7, then '%' and '/' as %XX, and so a leading '.'
// or '-' and the '.' of a trailing ".mbox", ".lock" or ".len" (names this
// layout gives a meaning). The empty component is "%".
func encodeMboxComponent(c string) string {
	if c == "" {
		return emptyComponent
	}
	if !utf8.ValidString(c) {
		// Not a name any mail program shows: escaped byte by byte, as
		// earlier versions did (no %XX above %7F comes from here).
		return formats.EncodeFSComponent(c)
	}
	m := formats.EncodeMailboxUTF7(c)
	var b strings.Builder
	reserved := -1
	for _, suf := range []string{mboxSuffix, ".lock", mboxLenSuffix} {
		if l := strings.ToLower(m); strings.HasSuffix(l, suf) {
			reserved = len(m) - len(suf)
		}
	}
	for i := 0; i < len(m); i++ {
		ch := m[i]
		if ch == '%' || ch == '/' || i == 0 && (ch == '.' || ch == '-') || i == reserved {
			b.WriteString("%" + strings.ToUpper(hexByte(ch)))
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

const emptyComponent = "%"

func hexByte(c byte) string {
	const hex = "0123456789ABCDEF"
	return string([]byte{hex[c>>4], hex[c&0xf]})
}

// decodeMboxComponent is the folder component a file name stands for: the
// inverse of encodeMboxComponent, or of formats.EncodeFSComponent (earlier
// archives), or else the name as it is (another program's file).
func decodeMboxComponent(name string) string {
	if name == emptyComponent {
		return ""
	}
	if s, ok := unpercent(name); ok {
		if d, err := formats.DecodeMailboxUTF7(s); err == nil && encodeMboxComponent(d) == name {
			return d
		}
	}
	if d, err := formats.DecodeFSComponent(name); err == nil {
		return d
	}
	return name
}

// unpercent undoes %XX escapes (uppercase hex only).
func unpercent(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		var v byte
		for _, h := range []byte{s[i+1], s[i+2]} {
			switch {
			case '0' <= h && h <= '9':
				v = v<<4 | (h - '0')
			case 'A' <= h && h <= 'F':
				v = v<<4 | (h - 'A' + 10)
			default:
				return "", false
			}
		}
		b.WriteByte(v)
		i += 2
	}
	return b.String(), true
}

// mboxTreeSkip reports whether an entry of a folder tree is never a folder:
// hidden entries (Dovecot's .imap, our length records), "*.lock", an
// earlier version's NAME.mbox.len, and at the top of a tree that is the
// archive's root, the manifest's files.
func mboxTreeSkip(name string, top, treeIsRoot bool) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") ||
		strings.HasSuffix(name, mboxSuffix+mboxLenSuffix) || top && treeIsRoot && archiveFile(name)
}

// looksLikeMbox reports whether the file at abs is empty or starts as an
// mbox file does.
func looksLikeMbox(abs string) bool {
	f, err := os.Open(abs)
	if err != nil {
		return false
	}
	defer f.Close()
	mr := formats.NewMboxReader(io.LimitReader(f, 64<<10))
	_, err = mr.Next()
	return err == nil || err == io.EOF
}

// folderOfFile is the folder path of a file of the tree (slash-separated,
// relative to the tree): each component without a ".mbox" suffix,
// decoded; a top-level "inbox" (any case, also "INBOX.mbox") is INBOX.
func folderOfFile(rel string) []string {
	comps := strings.Split(rel, "/")
	for i, c := range comps {
		comps[i] = decodeMboxComponent(strings.TrimSuffix(c, mboxSuffix))
	}
	return canonicalPath(comps)
}

// mboxArchiveFiles lists the folder files of the mbox store at root,
// slash-separated and relative to root (for verify).
func mboxArchiveFiles(root string) []string {
	tree, legacy := mboxLayout(root)
	var out []string
	filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == tree {
			return nil
		}
		top := filepath.Dir(p) == tree
		if mboxTreeSkip(d.Name(), top, tree == root) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && (!legacy || strings.HasSuffix(d.Name(), mboxSuffix)) {
			if rel, err := filepath.Rel(root, p); err == nil {
				out = append(out, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return out
}
