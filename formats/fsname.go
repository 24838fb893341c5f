package formats

import (
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// File-system-safe folder components
//
// A local store (Maildir++, a directory of mbox files) turns each component
// of a folder path into one file-system name. Server folder names are not to
// be trusted ("..", "../../etc", "a/b", NUL, "-rf"), so every component goes
// through EncodeFSComponent, whose result is always one harmless name:
//
//   - never "", "." or "..", and never starting with '.' or '-';
//   - no '/', no NUL, no control character (C0, DEL, C1);
//   - no '.' at all, because '.' is the Maildir++ hierarchy separator;
//   - only valid UTF-8: "Zürich" stays "Zürich", a stray byte is escaped.
//
// Forbidden bytes are written as '%' and two uppercase hex digits, and so is
// '%' itself ("50%" -> "50%25", ".hidden" -> "%2Ehidden"); the empty
// component is written as a lone "%". The encoding is a bijection between
// all strings and the canonical encoded names: DecodeFSComponent rejects any
// name that EncodeFSComponent would not have produced, so two different
// directory names can never decode to the same folder.
//
// Not handled: case-insensitive file systems (macOS, Windows) may fold
// "Foo" and "foo" together, and a component longer than the file system's
// name limit (usually 255 bytes) fails when the directory is made.

// emptyFSComponent is the encoding of the empty component.
const emptyFSComponent = "%"

// errFSComponent is returned for a name that is not a canonical encoding.
var errFSComponent = errors.New("formats: not a canonical file-system folder name")

// EncodeFSComponent returns the file-system-safe name of one folder
// component; see the rules above.
func EncodeFSComponent(c string) string {
	if c == "" {
		return emptyFSComponent
	}
	var b strings.Builder
	b.Grow(len(c))
	for i := 0; i < len(c); {
		r, size := utf8.DecodeRuneInString(c[i:])
		escape := r == utf8.RuneError && size == 1 || // not UTF-8
			unicode.IsControl(r) || // C0, DEL, C1
			r == '%' || r == '.' || r == '/' ||
			i == 0 && r == '-'
		if !escape {
			b.WriteString(c[i : i+size])
		} else {
			for j := i; j < i+size; j++ {
				writePercent(&b, c[j])
			}
		}
		i += size
	}
	return b.String()
}

func writePercent(b *strings.Builder, c byte) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}

// DecodeFSComponent is the inverse of EncodeFSComponent. It fails for any
// name EncodeFSComponent cannot produce (a bad or lowercase escape, a byte
// that should have been escaped, an escape of a byte that needs none).
func DecodeFSComponent(s string) (string, error) {
	if s == emptyFSComponent {
		return "", nil
	}
	if s == "" {
		return "", errFSComponent
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(s) {
			return "", errFSComponent
		}
		hi, ok1 := unhexUpper(s[i+1])
		lo, ok2 := unhexUpper(s[i+2])
		if !ok1 || !ok2 {
			return "", errFSComponent
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	out := b.String()
	// Canonical form only: this one check rejects raw forbidden bytes as
	// well as needless escapes, keeping the mapping one to one.
	if EncodeFSComponent(out) != s {
		return "", errFSComponent
	}
	return out, nil
}

func unhexUpper(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Maildir++ folder components
//
// A Maildir++ tree names its folder directories as Dovecot (default
// settings, no ":UTF-8"), Courier and mbsync do: in IMAP's modified UTF-7
// (RFC 3501 5.1.3), so "Privé" is ".Priv&AOk-". What modified UTF-7 does
// not make safe is escaped first, by the rules above: EncodeMaildirComponent
// is EncodeMailboxUTF7(EncodeFSComponent(c)). So
//
//   - a '&' is written "&-", which every one of those programs reads back
//     as '&': lossless;
//   - a '.' (the Maildir++ hierarchy separator) is written "%2E", a '%'
//     "%25", a '/' "%2F", a leading '-' "%2D" and a control character as
//     its %XX bytes. Dovecot with default settings shows these escapes as
//     they are ("go%2Enuts"): with its hierarchy separator '.' a folder name
//     cannot hold a '.', so no spelling exists that default Dovecot reads
//     back as the same name. Dovecot with its listescape plugin and
//     listescape_char = "%%" (hierarchy separator '/') decodes them;
//   - the result is printable ASCII only, never starts with '.' or '-', and
//     holds no '.' or '/'.

// EncodeMaildirComponent returns the on-disk name of one Maildir++ folder
// component; see above.
func EncodeMaildirComponent(c string) string {
	return EncodeMailboxUTF7(EncodeFSComponent(c))
}

// DecodeMaildirComponent is the inverse of EncodeMaildirComponent; it fails
// for any name EncodeMaildirComponent cannot produce.
func DecodeMaildirComponent(s string) (string, error) {
	u, err := DecodeMailboxUTF7(s)
	if err != nil {
		return "", err
	}
	return DecodeFSComponent(u)
}
