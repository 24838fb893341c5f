package memserver

import (
	"bytes"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// Rewrite changes a message the way some real server changes what it
// stores: it gets the bytes a client APPENDed and returns the bytes to
// store. It must not keep msg.
type Rewrite func(msg []byte) []byte

// StartRewriting is StartWithCaps for a server that rewrites every message
// APPENDed over IMAP (not those put there by Add) with rewrite, to play
// servers such as Cyrus or Courier in tests. Rewrites combine with Chain.
func StartRewriting(user, password string, caps imap.CapSet, rewrite Rewrite) (*Server, error) {
	if rewrite == nil {
		return nil, fmt.Errorf("memserver: nil rewrite")
	}
	return startServer(user, password, caps, rewrite)
}

// Chain applies rewrites in order.
func Chain(rewrites ...Rewrite) Rewrite {
	return func(msg []byte) []byte {
		for _, r := range rewrites {
			msg = r(msg)
		}
		return msg
	}
}

// headerEnd is the length of msg's header block including the empty line
// that ends it (the whole message when there is none).
func headerEnd(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	if bytes.HasPrefix(msg, []byte("\n")) {
		return 1
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
			return j + 1
		}
	}
	return len(msg)
}

// CyrusMunge8bit does what Cyrus IMAP does with its default `munge8bit: yes`:
// every 8-bit byte (0x80-0xFF) in the header block becomes 'X', one 'X' per
// byte (a two-byte UTF-8 "é" becomes "XX"). Encoded-words and the body are
// left alone.
func CyrusMunge8bit(msg []byte) []byte {
	out := bytes.Clone(msg)
	end := headerEnd(out)
	for i := 0; i < end; i++ {
		if out[i] >= 0x80 {
			out[i] = 'X'
		}
	}
	return out
}

// CourierFinalCRLF does what Courier does to a message that does not end with
// a line break: it adds CRLF.
func CourierFinalCRLF(msg []byte) []byte {
	if len(msg) == 0 || bytes.HasSuffix(msg, []byte("\n")) {
		return bytes.Clone(msg)
	}
	return append(bytes.Clone(msg), '\r', '\n')
}

// Refold rewrites the header block the way servers that re-serialise headers
// do: every folded field is unfolded, runs of blanks become one space, and a
// line longer than 40 bytes is folded again (CRLF TAB) at its blanks. Line
// ends in the header become CRLF; the body is left alone.
func Refold(msg []byte) []byte {
	end := headerEnd(msg)
	head, body := msg[:end], msg[end:]
	var fields [][]byte
	for _, line := range bytes.Split(head, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1] = append(fields[len(fields)-1], line...)
			continue
		}
		fields = append(fields, bytes.Clone(line))
	}
	var out bytes.Buffer
	for _, f := range fields {
		words := bytes.FieldsFunc(f, func(r rune) bool { return r == ' ' || r == '\t' })
		col := 0
		for i, w := range words {
			switch {
			case i == 0:
			case col+1+len(w) > 40:
				out.WriteString("\r\n\t")
				col = 1
			default:
				out.WriteByte(' ')
				col++
			}
			out.Write(w)
			col += len(w)
		}
		out.WriteString("\r\n")
	}
	if end < len(msg) || bytes.HasSuffix(head, []byte("\n\n")) || bytes.HasSuffix(head, []byte("\n\r\n")) {
		out.WriteString("\r\n")
	}
	out.Write(body)
	return out.Bytes()
}

// rewriteSession is an imapmemserver session whose APPEND stores
// rewrite(message) instead of the message.
type rewriteSession struct {
	imapserver.SessionIMAP4rev2
	rewrite Rewrite
}

func (s *rewriteSession) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	b = s.rewrite(b)
	return s.SessionIMAP4rev2.Append(mailbox, literal{bytes.NewReader(b), int64(len(b))}, options)
}

type literal struct {
	*bytes.Reader
	size int64
}

func (l literal) Size() int64 { return l.size }

// Count returns the number of messages in folder ("/"-separated).
func (s *Server) Count(folder string) (uint32, error) {
	name, err := cleanFolder(folder)
	if err != nil {
		return 0, err
	}
	sd, err := s.user.Status(name, &imap.StatusOptions{NumMessages: true})
	if err != nil {
		return 0, err
	}
	return *sd.NumMessages, nil
}
