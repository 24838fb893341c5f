package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// KeyVersion names the normal form of IdentityKey: state files made with
// another are re-indexed.
const KeyVersion = 1

// Key is a message's identity: two messages with the same Key are the same
// message for deduplication.
//
// The key is the SHA-256 over the normalised Message-ID together with the
// Date, From and Subject header values (unfolded, trimmed). A message with no
// Message-ID gets the SHA-256 of its whole header block with line endings
// normalised to LF. The key needs the header block only, so a destination can
// be indexed without downloading bodies.
type Key [32]byte

// String returns the key in lowercase hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// ParseKey is the inverse of Key.String.
func ParseKey(s string) (Key, bool) {
	var k Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, false
	}
	copy(k[:], b)
	return k, true
}

// MaxHeaderBytes bounds how much of a message is kept to find its header
// block. A header block longer than this is cut there for the key's purpose.
const MaxHeaderBytes = 1 << 20

// IdentityKey computes the Key of a message from its bytes. Only the header
// block (everything up to the first empty line, or the whole message if it
// has none) is read; msg may be the whole message or just its header.
func IdentityKey(msg []byte) Key {
	return keyOfHeader(HeaderBlock(msg))
}

// HeaderBlock returns the header block of msg: the bytes before the first
// empty line (LF LF, CRLF CRLF or mixed), without that empty line.
func HeaderBlock(msg []byte) []byte {
	if len(msg) > MaxHeaderBytes {
		msg = msg[:MaxHeaderBytes]
	}
	// A message that starts with an empty line has an empty header block.
	if bytes.HasPrefix(msg, []byte("\n")) || bytes.HasPrefix(msg, []byte("\r\n")) {
		return nil
	}
	for i := 0; i < len(msg); i++ {
		if msg[i] != '\n' {
			continue
		}
		j := i + 1
		if j < len(msg) && msg[j] == '\r' {
			j++
		}
		if j < len(msg) && msg[j] == '\n' {
			return msg[:i+1]
		}
	}
	return msg
}

func keyOfHeader(h []byte) Key {
	fields := parseHeaderFields(h, "message-id", "date", "from", "subject")
	mid := normaliseMessageID(fields[0])
	if len(mid) == 0 {
		return sha256.Sum256(normaliseEOL(h))
	}
	var buf bytes.Buffer
	buf.WriteString("mailferry-key-v1\x00")
	buf.Write(mid)
	for _, f := range fields[1:] {
		buf.WriteByte(0)
		buf.Write(f)
	}
	return sha256.Sum256(buf.Bytes())
}

// parseHeaderFields returns, for each wanted (lowercase) field name, the
// unfolded and trimmed value of its first occurrence, or nil.
func parseHeaderFields(h []byte, names ...string) [][]byte {
	out := make([][]byte, len(names))
	lines := splitLines(h)
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name := bytes.ToLower(bytes.TrimRight(line[:colon], " \t"))
		idx := -1
		for n, want := range names {
			if out[n] == nil && string(name) == want {
				idx = n
				break
			}
		}
		if idx < 0 {
			continue
		}
		val := append([]byte(nil), line[colon+1:]...)
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			val = append(val, ' ')
			val = append(val, bytes.TrimLeft(lines[i], " \t")...)
		}
		out[idx] = append([]byte{}, bytes.TrimSpace(val)...)
	}
	return out
}

// splitLines splits on LF, dropping a CR before it.
func splitLines(h []byte) [][]byte {
	var lines [][]byte
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		var line []byte
		if i < 0 {
			line, h = h, nil
		} else {
			line, h = h[:i], h[i+1:]
		}
		lines = append(lines, bytes.TrimSuffix(line, []byte("\r")))
	}
	return lines
}

// normaliseMessageID keeps what is inside the first <...>, or the trimmed
// value when there are no angle brackets.
func normaliseMessageID(v []byte) []byte {
	v = bytes.TrimSpace(v)
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		if j := bytes.IndexByte(v[i:], '>'); j > 0 {
			return bytes.TrimSpace(v[i+1 : i+j])
		}
	}
	return v
}

// normaliseEOL turns CRLF and lone CR into LF.
func normaliseEOL(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '\r' {
			if i+1 < len(b) && b[i+1] == '\n' {
				continue
			}
			c = '\n'
		}
		out = append(out, c)
	}
	return out
}

// KeyWriter computes a message's Key from its bytes as they stream past:
// write the message through it (it keeps only the header block) and call Key.
type KeyWriter struct {
	buf  []byte
	done bool
}

// Write keeps bytes until the header block is complete; it never fails.
func (w *KeyWriter) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	start := len(w.buf) - 3
	if start < 0 {
		start = 0
	}
	w.buf = append(w.buf, p...)
	if bytes.HasPrefix(w.buf, []byte("\n")) || bytes.HasPrefix(w.buf, []byte("\r\n")) ||
		bytes.Contains(w.buf[start:], []byte("\n\n")) || bytes.Contains(w.buf[start:], []byte("\n\r\n")) ||
		len(w.buf) >= MaxHeaderBytes {
		w.buf = HeaderBlock(w.buf)
		w.done = true
	}
	return len(p), nil
}

// Key returns the key of what was written.
func (w *KeyWriter) Key() Key { return IdentityKey(w.buf) }

// HeaderValue returns the unfolded, trimmed value of the first header field
// called name (case-insensitive) in a header block, or "".
func HeaderValue(header []byte, name string) string {
	v := parseHeaderFields(HeaderBlock(header), toLowerASCII(name))[0]
	return string(v)
}

func toLowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// Header returns the header block seen so far.
func (w *KeyWriter) Header() []byte { return HeaderBlock(w.buf) }
