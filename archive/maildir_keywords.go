package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Keywords in a Maildir, Dovecot's convention (Dovecot, and mutt and
// Python leave the letters alone): a message file's info holds a lowercase
// letter per keyword after the system flags' letters ("...:2,RSab"); letter
// 'a'+N is the keyword on the line "N keyword" of the folder directory's
// dovecot-keywords file (N from 0 to 25). So a folder has at most 26
// keywords in file names; more are kept only in the archive's manifest,
// with a warning.
//
// Every keyword gets a letter, $Forwarded too: Dovecot does not read the
// 'P' (passed) letter that mutt and Python use for it, so a forwarded
// message carries both 'P' and its keyword letter.

// dovecotKeywordsFile is the per-folder keyword table.
const dovecotKeywordsFile = "dovecot-keywords"

// maxKeywordLetters is how many keywords a folder's file names can carry.
const maxKeywordLetters = 26

// keywordTable is one folder's dovecot-keywords: names[i] is the keyword of
// letter 'a'+i ("" for none). dirty says it gained keywords not yet saved.
type keywordTable struct {
	names [maxKeywordLetters]string
	dirty bool
}

// readKeywordTable reads dir's dovecot-keywords (a missing file is an empty
// table). Lines that are not "N keyword" with N below 26 are returned as
// problems and left out.
func readKeywordTable(dir string) (*keywordTable, []string, error) {
	kt := &keywordTable{}
	data, err := os.ReadFile(filepath.Join(dir, dovecotKeywordsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return kt, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("maildir: %w", err)
	}
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		num, kw, ok := strings.Cut(line, " ")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 0 || n >= maxKeywordLetters || kw == "" || strings.ContainsAny(kw, " \t") {
			bad = append(bad, fmt.Sprintf("%s: line %q is not \"N keyword\" (N 0-25): left out", dovecotKeywordsFile, line))
			continue
		}
		kt.names[n] = kw
	}
	return kt, bad, nil
}

// isKeyword reports whether a flag is a keyword (no system flag).
func isKeyword(flag string) bool { return flag != "" && flag[0] != '\\' }

// letters returns the keyword letters of flags in ASCII order, giving a
// keyword without one the first free letter; overflow lists the keywords
// that found none.
func (kt *keywordTable) letters(flags []string) (letters string, overflow []string) {
	var have []byte
	for _, f := range flags {
		if !isKeyword(f) {
			continue
		}
		i := slices.IndexFunc(kt.names[:], func(n string) bool { return strings.EqualFold(n, f) })
		if i < 0 {
			i = slices.Index(kt.names[:], "")
			if i < 0 {
				overflow = append(overflow, f)
				continue
			}
			kt.names[i] = f
			kt.dirty = true
		}
		have = append(have, byte('a'+i))
	}
	slices.Sort(have)
	return string(slices.Compact(have)), overflow
}

// flags returns the keywords of a file name's letters; unknown holds the
// letters the table does not name.
func (kt *keywordTable) flags(letters string) (kws []string, unknown string) {
	for i := 0; i < len(letters); i++ {
		if kw := kt.names[letters[i]-'a']; kw != "" {
			kws = append(kws, kw)
		} else {
			unknown += letters[i : i+1]
		}
	}
	return kws, unknown
}

// save writes the table to dir durably (a temporary file fsynced and
// renamed over dovecot-keywords, then the directory fsynced).
func (kt *keywordTable) save(dir string) error {
	var b strings.Builder
	for i, kw := range kt.names {
		if kw != "" {
			fmt.Fprintf(&b, "%d %s\n", i, kw)
		}
	}
	tmp := filepath.Join(dir, dovecotKeywordsFile+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if err := fsyncPath(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dovecotKeywordsFile)); err != nil {
		return err
	}
	kt.dirty = false
	return syncDir(dir)
}

// keywordTableOf returns the keyword table of a folder directory (relative
// to root), read once.
func (m *Maildir) keywordTableOf(dir string) (*keywordTable, error) {
	if kt, ok := m.keywords[dir]; ok {
		return kt, nil
	}
	kt, bad, err := readKeywordTable(filepath.Join(m.root, dir))
	if err != nil {
		return nil, err
	}
	for _, b := range bad {
		m.warn(path2label(dir) + ": " + b)
	}
	m.keywords[dir] = kt
	return kt, nil
}

// withKeywords adds to the flags of a scanned file the keywords of its
// letters, once each; a letter dovecot-keywords does not name is a warning.
func (m *Maildir) withKeywords(dir, fileName string, flags []string) ([]string, error) {
	letters := formats.MaildirKeywordLetters(fileName)
	if letters == "" {
		return flags, nil
	}
	kt, err := m.keywordTableOf(dir)
	if err != nil {
		return nil, err
	}
	kws, unknown := kt.flags(letters)
	if unknown != "" {
		m.warn(fmt.Sprintf("%s: keyword letters %q are not in %s: left out", path2label(dir), unknown, dovecotKeywordsFile))
	}
	for _, kw := range kws {
		if !slices.ContainsFunc(flags, func(f string) bool { return strings.EqualFold(f, kw) }) {
			flags = append(flags, kw)
		}
	}
	return flags, nil
}

// keywordLetters returns the letters for a message stored into dir; a
// keyword beyond the 26 letters is a warning (the manifest keeps it).
func (m *Maildir) keywordLetters(dir string, flags []string) (string, error) {
	if !slices.ContainsFunc(flags, isKeyword) {
		return "", nil
	}
	kt, err := m.keywordTableOf(dir)
	if err != nil {
		return "", err
	}
	letters, overflow := kt.letters(flags)
	if len(overflow) > 0 {
		m.warn(fmt.Sprintf("%s: more than %d keywords: %s kept only in the manifest, not in file names",
			path2label(dir), maxKeywordLetters, strings.Join(overflow, " ")))
	}
	return letters, nil
}

// saveKeywords writes the tables of dirs that gained keywords, before the
// messages that use them are renamed into place.
func (m *Maildir) saveKeywords(dirs []string) error {
	for _, dir := range dirs {
		if kt := m.keywords[dir]; kt != nil && kt.dirty {
			if err := kt.save(filepath.Join(m.root, dir)); err != nil {
				return fmt.Errorf("maildir: %s: %w", dovecotKeywordsFile, err)
			}
		}
	}
	return nil
}

// path2label names a folder directory in a warning.
func path2label(dir string) string {
	if dir == "" {
		return "INBOX"
	}
	return dir
}
