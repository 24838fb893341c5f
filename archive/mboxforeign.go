package archive

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/mailferry/mailferry/formats"
)

// Reading another program's mbox file (one without our length record) the
// way the program that wrote it shows it:
//
//   - mboxo or mboxrd: mutt, Python's mailbox, formail and Dovecot write
//     mboxo (a body line "From " becomes ">From ", a line ">From " stays)
//     and show ">From " lines as they are; only an mboxrd writer (getmail6,
//     this program's earlier versions) also escapes ">From " into
//     ">>From ". So a file is read as mboxrd (one '>' taken away) only when
//     a line ^>>+From shows that its writer escapes, else as mboxo (every
//     '>' kept).
//   - the newline before a From_ line is taken away only where it makes a
//     blank line (formats.MboxReader.BlankLineOnly).
//   - a file whose first message carries X-IMAPbase or X-IMAP was kept by an
//     IMAP server (Dovecot, UW-IMAP, mailutils): the headers that server
//     keeps its state in, and hides from its IMAP clients, are taken out of
//     every message (mboxMetaHeaders), after their flags and keywords were
//     read.

// mboxMetaHeaders are the headers Dovecot's mbox storage keeps its state in
// and hides from IMAP (mbox_hide_headers in Dovecot 2.3's mbox-storage.c).
var mboxMetaHeaders = []string{"content-length", "status", "x-imap", "x-imapbase", "x-keywords", "x-status", "x-uid"}

// foreignKind is how another program's file is read.
type foreignKind struct {
	mboxo bool // no line ^>>+From: keep every '>'
	meta  bool // an IMAP server's file: strip mboxMetaHeaders
}

// foreignKind looks at a whole file once (cached by its name and length).
func (s *Mbox) foreignKind(v *readView) foreignKind {
	key := v.rel + ":" + strconv.FormatInt(v.limit, 10)
	if k, ok := s.kinds[key]; ok {
		return k
	}
	k := foreignKind{mboxo: true}
	head := make([]byte, 64<<10)
	n, _ := v.r.ReadAt(head, 0)
	first := formats.HeaderBlock(afterFirstLine(head[:n]))
	k.meta = formats.HeaderValue(first, "X-IMAPbase") != "" || formats.HeaderValue(first, "X-IMAP") != ""
	sr := io.NewSectionReader(v.r, 0, v.limit)
	buf := make([]byte, 256<<10)
	var carry []byte
	for k.mboxo {
		n, err := sr.Read(buf)
		chunk := append(carry, buf[:n]...)
		if bytes.Contains(chunk, []byte("\n>>From ")) || bytes.HasPrefix(chunk, []byte(">>From ")) && len(carry) == 0 && n > 0 {
			k.mboxo = false
		}
		if len(chunk) > 8 {
			carry = append(carry[:0], chunk[len(chunk)-8:]...)
		} else {
			carry = append(carry[:0], chunk...)
		}
		if err != nil {
			break
		}
	}
	if s.kinds == nil {
		s.kinds = map[string]foreignKind{}
	}
	s.kinds[key] = k
	return k
}

// afterFirstLine is b without its first line (the From_ line).
func afterFirstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return nil
}

// stripMeta returns the header block h without the mboxMetaHeaders fields
// (with their continuation lines).
func stripMeta(h []byte) []byte { return stripHeaders(h, mboxMetaHeaders) }

// stripHeaders returns the header block h without the fields named in
// names (any case), with their continuation lines.
func stripHeaders(h []byte, names []string) []byte {
	out := make([]byte, 0, len(h))
	hiding := false
	for _, line := range bytes.SplitAfter(h, []byte("\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			if !hiding {
				out = append(out, line...)
			}
			continue
		}
		hiding = false
		if i := bytes.IndexByte(line, ':'); i > 0 {
			name := strings.TrimRight(string(line[:i]), " \t")
			hiding = slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
		}
		if !hiding {
			out = append(out, line...)
		}
	}
	return out
}

// metaStripped streams body with the mboxMetaHeaders fields taken out of
// its header block.
func metaStripped(body io.Reader) (io.Reader, error) {
	h, buf, err := mboxHeader(body, nil)
	if err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(stripMeta(h)), bytes.NewReader(buf[len(h):]), body), nil
}

// reader returns an mbox reader of r (a view's bytes from a message's
// start) set up for the view's file; warn passes its warnings on.
func (s *Mbox) reader(v *readView, r io.Reader, warn bool) *formats.MboxReader {
	mr := formats.NewMboxReader(r)
	if warn {
		mr.OnWarning = func(w formats.MboxWarning) { s.warn(v.rel, w) }
	}
	// A file with our sidecar was written in mboxrd by this store: a
	// Content-Length header in a message is just part of its bytes.
	mr.IgnoreContentLength = v.ours
	mr.BlankLineOnly = !v.ours
	mr.Mboxo = v.kind.mboxo
	return mr
}
