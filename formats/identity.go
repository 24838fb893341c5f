package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"sync"
)

// Key is a message's identity: two messages with the same Key are the same
// message for deduplication.
//
// # What counts as the same message (key version 2)
//
// The key is computed from the header block alone (see HeaderBlock), so a
// destination can be indexed with BODY.PEEK[HEADER] and no body. It must come
// out the same for the bytes mailferry sent and for what a server hands back
// after storing them, because after a lost state or a crash the destination
// is re-indexed from its own copies. Servers are known to rewrite headers:
//
//   - Cyrus (munge8bit, the default) replaces every 8-bit byte of a header
//     field with 'X': each byte of a UTF-8 sequence becomes one 'X';
//     encoded-words (=?utf-8?q?...?=) are left as they are.
//   - Courier adds a final CRLF to a message that lacks one: for a
//     header-only message that changes the header block itself.
//   - Servers refold long header lines and change runs of white space.
//   - Line endings are CRLF on IMAP and LF in many local stores; Dovecot's
//     BODY[] serves a stored NUL as 0x80, BINARY[] as NUL.
//
// So the key hashes a normal form of the header block in which none of that
// shows:
//
//  1. The block is cut into lines at CRLF, LF or a lone CR.
//  2. A line beginning with SP or HTAB continues the field before it
//     (unfolding); the line break is dropped.
//  3. SP, HTAB and CR are removed from every field, wherever they are: a
//     refold, a changed run of blanks or a fold inserted where there was no
//     blank all vanish. (Two headers that differ only in blanks are the same.)
//  4. NUL and every byte 0x80-0xFF become 'X', exactly as Cyrus stores them
//     (so "é", stored by Cyrus as "XX", and a literal "XX" are the same).
//     Encoded-words are not decoded.
//  5. Fields left empty are dropped; a final line break is no line at all.
//
// Then, with the fields in that normal form:
//
//   - If the first Message-ID field holds a value, the key is SHA-256 of
//     "mailferry-key-v2", the Message-ID (what is inside its first <...>, or
//     the whole value), and the values of the first Date, From and Subject
//     fields (empty when absent), each preceded by a NUL byte (no normal form
//     holds a NUL). Field names match case-insensitively. Other fields do not
//     count: a server may add Received or Return-Path lines.
//   - Otherwise the key is SHA-256 of "mailferry-key-v2-header", a NUL byte
//     and every field of the block in order, joined with LF.
//
// Two messages sharing a Message-ID but differing in Date, From or Subject
// are different messages; two messages whose headers differ only in what the
// normal form drops are the same message (the price of surviving servers).
// A key from an earlier KeyVersion never equals one of this version: state
// recorded with an older version must be re-indexed.
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

// KeyVersion names the normal form of IdentityKey: state files made with
// another are re-indexed. It changes whenever IdentityKey would give another
// key for some message; keys stored under another version (state files,
// archive manifests) are not comparable.
const KeyVersion = 2

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
	nb := normalBufs.Get().(*normalBuf)
	defer nb.release()
	fields := nb.fill(h)
	var want [4][]byte // message-id, date, from, subject
	var seen [4]bool
	for _, f := range fields {
		colon := bytes.IndexByte(f, ':')
		if colon <= 0 {
			continue
		}
		idx := -1
		switch name := f[:colon]; { // ASCII: normalFields made 8-bit bytes X
		case equalLowerASCII(name, "message-id"):
			idx = 0
		case equalLowerASCII(name, "date"):
			idx = 1
		case equalLowerASCII(name, "from"):
			idx = 2
		case equalLowerASCII(name, "subject"):
			idx = 3
		}
		if idx >= 0 && !seen[idx] {
			seen[idx] = true
			want[idx] = f[colon+1:]
		}
	}
	// The hash is of the bytes written one after the other, as it was of
	// their concatenation: the same key, without the copy.
	d := sha256.New()
	mid := messageIDOf(want[0])
	if len(mid) == 0 {
		d.Write([]byte("mailferry-key-v2-header\x00"))
		for i, f := range fields {
			if i > 0 {
				d.Write([]byte("\n"))
			}
			d.Write(f)
		}
	} else {
		d.Write([]byte("mailferry-key-v2\x00"))
		d.Write(mid)
		for _, v := range want[1:] {
			d.Write([]byte{0})
			d.Write(v)
		}
	}
	var k Key
	d.Sum(k[:0])
	return k
}

// equalLowerASCII says whether b, lowered in ASCII, is lower: a lowercase
// ASCII name.
func equalLowerASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// normalFields returns the fields of a header block in the normal form that
// Key documents (steps 1-5): unfolded, without SP, HTAB or CR, NUL and 8-bit
// bytes as 'X', empty ones dropped. The fields share one array, the size of
// h: two allocations a header, where a field of its own grown byte by byte
// took about 28 (349 MB of the 1.76 GB a 200k IMAP->IMAP copy allocated,
// the most of any step of ours).
func normalFields(h []byte) [][]byte {
	return new(normalBuf).fill(h)
}

// normalBuf holds what normalFields returns: the fields and the array they
// share. keyOfHeader takes one from normalBufs and gives it back once it
// has hashed the fields, so that a copy allocates none a message (175 MB
// of the 1 GB a 200k IMAP->IMAP copy allocated, the most of any step of
// ours, each a collection sooner).
type normalBuf struct {
	out    []byte
	fields [][]byte
}

var normalBufs = sync.Pool{New: func() any { return new(normalBuf) }}

// normalBufKept is the largest array a normalBuf goes back to the pool
// with (and a sixty-fourth of it the most fields): a buffer grown by a
// larger header is left to the collector.
const normalBufKept = 64 << 10

// release gives b back to normalBufs. The fields it returned are not to be
// used after.
func (b *normalBuf) release() {
	if cap(b.out) > normalBufKept || cap(b.fields) > normalBufKept/64 {
		return
	}
	b.out, b.fields = b.out[:0], b.fields[:0]
	normalBufs.Put(b)
}

// fill is normalFields into b's arrays (grown when h needs more: the
// fields are never longer than h, so out does not move once sized).
func (b *normalBuf) fill(h []byte) [][]byte {
	if cap(b.out) < len(h) {
		b.out = make([]byte, 0, len(h))
	}
	if n := bytes.Count(h, []byte("\n")) + 1; cap(b.fields) < n {
		b.fields = make([][]byte, 0, n)
	}
	out, fields := b.out[:0], b.fields[:0]
	start := 0 // where the current field begins in out
	lineStart := true
	flush := func() {
		if len(out) > start {
			fields = append(fields, out[start:len(out):len(out)])
		}
		start = len(out)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c == '\n' || c == '\r' && (i+1 >= len(h) || h[i+1] != '\n'):
			lineStart = true // a line break (LF, or a lone CR)
			continue
		case c == '\r':
			continue // the CR of a CRLF
		case c == ' ' || c == '\t':
			lineStart = false // a continuation line, or blanks inside one
			continue
		}
		if lineStart {
			flush()
			lineStart = false
		}
		if c == 0 || c >= 0x80 {
			c = 'X'
		}
		out = append(out, c)
	}
	flush()
	b.out, b.fields = out, fields
	return fields
}

// messageIDOf keeps what is inside the first <...> of a normalised
// Message-ID value, or the whole value when there is no such pair.
func messageIDOf(v []byte) []byte {
	if i := bytes.IndexByte(v, '<'); i >= 0 {
		if j := bytes.IndexByte(v[i:], '>'); j > 0 {
			return v[i+1 : i+j]
		}
	}
	return v
}

// parseHeaderFields returns, for each wanted (lowercase) field name, the
// unfolded and trimmed value of its first occurrence, or nil. It allocates
// only the values it returns (it is asked for every message's Message-ID).
func parseHeaderFields(h []byte, names ...string) [][]byte {
	out := make([][]byte, len(names))
	for rest := h; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t")
		idx := -1
		for n, want := range names {
			if out[n] == nil && lowerIs(name, want) {
				idx = n
				break
			}
		}
		if idx < 0 {
			continue
		}
		val := append([]byte(nil), line[colon+1:]...)
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			var next []byte
			next, rest = nextLine(rest)
			val = append(val, ' ')
			val = append(val, bytes.TrimLeft(next, " \t")...)
		}
		out[idx] = append([]byte{}, bytes.TrimSpace(val)...)
	}
	return out
}

// lowerIs says whether bytes.ToLower(name) is want, without making it where
// name is ASCII.
func lowerIs(name []byte, want string) bool {
	for _, c := range name {
		if c >= 0x80 {
			return string(bytes.ToLower(name)) == want
		}
	}
	return equalLowerASCII(name, want)
}

// nextLine splits the first line off h, at LF, dropping a CR before it.
func nextLine(h []byte) (line, rest []byte) {
	i := bytes.IndexByte(h, '\n')
	if i < 0 {
		line, rest = h, nil
	} else {
		line, rest = h[:i], h[i+1:]
	}
	return bytes.TrimSuffix(line, []byte("\r")), rest
}

// KeyWriter computes a message's Key from its bytes as they stream past:
// write the message through it (it keeps only the header block) and call Key.
type KeyWriter struct {
	buf  []byte
	done bool
	from *[]byte // the pooled array buf was taken from, if any
}

// keyBufs holds KeyWriter arrays given back by Release: a copy appended a
// new one for every message (204 MB of a 200k IMAP->IMAP copy's 1.76 GB).
var keyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// Release gives the writer's array back for another message's: the writer
// is empty after it, and what Header returned is not to be used any more.
func (w *KeyWriter) Release() {
	if w.from != nil && cap(w.buf) <= 64<<10 {
		*w.from = w.buf[:0]
		keyBufs.Put(w.from)
	}
	*w = KeyWriter{}
}

// Write keeps bytes until the header block is complete; it never fails.
func (w *KeyWriter) Write(p []byte) (int, error) {
	if w.done {
		return len(p), nil
	}
	if w.buf == nil {
		w.from = keyBufs.Get().(*[]byte)
		w.buf = (*w.from)[:0]
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
