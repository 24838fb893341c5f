package formats

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is the modified base64 alphabet of RFC 3501 section 5.1.3.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// EncodeMailboxUTF7 encodes a UTF-8 mailbox name in IMAP's modified UTF-7:
// printable ASCII stays (with "&" as "&-"), everything else goes in
// "&...-" runs of modified base64 over UTF-16.
func EncodeMailboxUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 2*len(u))
		for i, c := range u {
			buf[2*i], buf[2*i+1] = byte(c>>8), byte(c)
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// errMailboxUTF7 is returned for a name that is not canonical modified UTF-7.
var errMailboxUTF7 = errors.New("formats: not a canonical modified UTF-7 mailbox name")

// DecodeMailboxUTF7 is the inverse of EncodeMailboxUTF7. It accepts only
// what EncodeMailboxUTF7 produces (printable ASCII outside "&...-" runs, no
// run encoding printable ASCII, no two runs side by side, valid UTF-16), so
// a name made by another rule, such as raw UTF-8 or a stray "&", is refused
// rather than misread.
func DecodeMailboxUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errMailboxUTF7
		}
		if c != '&' {
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errMailboxUTF7
		}
		run := s[i+1 : i+1+end]
		i += end + 1
		if run == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.DecodeString(run)
		if err != nil || len(raw)%2 != 0 {
			return "", errMailboxUTF7
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == utf8.RuneError {
				return "", errMailboxUTF7
			}
			b.WriteRune(r)
		}
	}
	out := b.String()
	if EncodeMailboxUTF7(out) != s {
		return "", errMailboxUTF7
	}
	return out, nil
}
