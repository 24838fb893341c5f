package formats

import (
	"strconv"
	"strings"
	"time"
)

// Maildir file names
//
// A Maildir message file is named UNIQUE or UNIQUE:2,FLAGS. mailferry makes
// unique names as
//
//	<seconds>.M<microseconds>P<pid>R<random hex>.<host>,S=<size>
//
// and keeps flags as info letters in ASCII order:
//
//	D \Draft   F \Flagged   P $Forwarded (passed)   R \Answered (replied)
//	S \Seen    T \Deleted (trashed)
//
// Any other flag (a keyword such as $Junk or $Label1) has no fixed letter:
// Dovecot's convention gives keywords the lowercase letters 'a' to 'z', 'a'+N
// standing for line "N keyword" of a dovecot-keywords file in the folder's
// directory. So FormatMaildirName drops keywords and ParseMaildirName
// ignores lowercase letters; the Maildir store maps them through that file
// (archive/maildir_keywords.go), reading them with MaildirKeywordLetters.

// maildirLetters maps each info letter, in the ASCII order it is written, to
// the flag it stands for.
var maildirLetters = [...]struct {
	letter byte
	flag   string
}{
	{'D', FlagDraft},
	{'F', FlagFlagged},
	{'P', "$Forwarded"},
	{'R', FlagAnswered},
	{'S', FlagSeen},
	{'T', FlagDeleted},
}

// NewUniqueName returns a Maildir unique name for a message delivered at now
// by process pid, with rnd as random bits and size as the file's exact size
// in bytes (size < 0: the ",S=" part is left out). The host is sanitised so
// that the name can never hold '/' or ':' (nor '\' or control characters):
// those bytes are written as a backslash and three octal digits, the
// convention Courier and Dovecot use; an empty host becomes "localhost".
//
// Two calls with the same arguments return the same name, so a caller can
// name a temporary file before the size is known and the final file after.
func NewUniqueName(now time.Time, pid int, rnd uint64, host string, size int64) string {
	var b strings.Builder
	b.Grow(64 + len(host))
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(".M")
	b.WriteString(strconv.Itoa(now.Nanosecond() / 1000))
	b.WriteString("P")
	b.WriteString(strconv.Itoa(pid))
	b.WriteString("R")
	b.WriteString(strconv.FormatUint(rnd, 16))
	b.WriteString(".")
	b.WriteString(sanitiseHost(host))
	if size >= 0 {
		b.WriteString(",S=")
		b.WriteString(strconv.FormatInt(size, 10))
	}
	return b.String()
}

// sanitiseHost escapes the bytes a Maildir unique name may not hold.
func sanitiseHost(host string) string {
	if host == "" {
		return "localhost"
	}
	escape := func(c byte) bool { return c == '/' || c == ':' || c == '\\' || c < 0x20 || c == 0x7f }
	clean := true
	for i := 0; i < len(host) && clean; i++ {
		clean = !escape(host[i])
	}
	if clean {
		return host // the usual case: nothing to build
	}
	var b strings.Builder
	for i := 0; i < len(host); i++ {
		c := host[i]
		if escape(c) {
			b.WriteByte('\\')
			b.WriteString(strconv.FormatUint(uint64(c)|0o1000, 8)[1:]) // three octal digits
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ParseMaildirName splits a Maildir file name into its unique part and the
// flags of its ":2," info, in the order of maildirLetters. Letters that map
// to no flag (lowercase keyword letters, unknown capitals) are ignored, as
// is an info that is not of the ":2," kind. ok is false for names that are
// not message files at all: empty, hidden (leading '.'), holding '/' or NUL,
// or with an empty unique part.
func ParseMaildirName(name string) (unique string, flags []string, ok bool) {
	if name == "" || name[0] == '.' || strings.ContainsAny(name, "/\x00") {
		return "", nil, false
	}
	unique, info, hasInfo := strings.Cut(name, ":")
	if unique == "" {
		return "", nil, false
	}
	if !hasInfo || !strings.HasPrefix(info, "2,") {
		return unique, nil, true
	}
	letters := info[2:]
	for _, l := range maildirLetters {
		if strings.IndexByte(letters, l.letter) >= 0 {
			flags = append(flags, l.flag)
		}
	}
	return unique, flags, true
}

// FormatMaildirName returns unique + ":2," + the info letters of flags in
// ASCII order. System flags and $Forwarded are matched case-insensitively;
// other flags have no letter and are dropped (see the comment at the top of
// this file). unique must not hold ':' or '/' (NewUniqueName never does).
func FormatMaildirName(unique string, flags []string) string {
	var have [len(maildirLetters)]bool
	for _, f := range flags {
		for i, l := range maildirLetters {
			if strings.EqualFold(f, l.flag) {
				have[i] = true
			}
		}
	}
	var b strings.Builder
	b.Grow(len(unique) + 3 + len(maildirLetters))
	b.WriteString(unique)
	b.WriteString(":2,")
	for i, l := range maildirLetters {
		if have[i] {
			b.WriteByte(l.letter)
		}
	}
	return b.String()
}

// MaildirKeywordLetters returns the lowercase letters ('a'-'z', Dovecot's
// keyword letters) of a file name's ":2," info, in the order they appear.
func MaildirKeywordLetters(name string) string {
	_, info, ok := strings.Cut(name, ":2,")
	if !ok {
		return ""
	}
	var b strings.Builder
	for i := 0; i < len(info); i++ {
		if c := info[i]; c >= 'a' && c <= 'z' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
