package migrate

import (
	"fmt"

	"github.com/mailferry/mailferry/formats"
)

// A message the source server cannot serve can end the connection rather
// than the command: Dovecot answers the FETCH of a message whose file it
// cannot read with "* 3 FETCH (UID 3)" and "* BYE FETCH failed: Internal
// error occurred". Such a pass was tried again and died at the same
// message every time until the retries were spent (31 s): the run ended
// with exit 1, the folder's messages after that one were never copied, and
// every rerun ended the same way. imapsync fetches one message at a time
// and names the one it could not fetch.
//
// So: when the source's connection dies between two messages of a
// transfer (no error of the destination's or of this side's), the message
// it was to deliver next is noted (sourceDied). When the next pass of the
// folder dies at the same message, that message is taken for the cause:
// the passes after it leave it out and name it as failed in the report
// (exit 3), and the rest of the folder is copied. A connection that breaks
// for other reasons does not break twice in a row just before one message.
// A message left out is not recorded in the state: the next run tries it
// again.

// poison is what a folder's passes learnt about messages that end the
// source's connection: the one the last pass died at, and those left out.
type poison struct {
	last string           // the ID of the message the last pass died at ("" if it did not)
	out  map[string]error // left out, with the error of the second death
}

// sourceDied notes, after the source's connection died during t's FETCH,
// the message it was to deliver next: the first not delivered after the
// last delivered one (a message the source skipped earlier, one expunged
// meanwhile, is not it).
func (p *folderPass) sourceDied(t *transfer, err error) {
	next := -1
	for i, m := range t.d.copy {
		if t.delivered[m.ID] {
			next = -1
		} else if next < 0 {
			next = i
		}
	}
	if next >= 0 {
		p.died, p.diedErr = t.d.copy[next].ID, err
	}
}

// after takes what a pass learnt: a second death in a row at one message
// leaves that message out of the passes after.
func (s *poison) after(p *folderPass) {
	switch {
	case p.died == "":
		s.last = ""
	case p.died == s.last:
		if s.out == nil {
			s.out = map[string]error{}
		}
		s.out[p.died] = p.diedErr
		s.last = ""
	default:
		s.last = p.died
	}
}

// leaveOut takes the messages known to end the source's connection out of
// the pass's decision and names each as failed.
func (p *folderPass) leaveOut() {
	if p.poison == nil || len(p.poison.out) == 0 {
		return
	}
	var keep []formats.Message
	cut := false
	for i, m := range p.d.copy {
		err, bad := p.poison.out[m.ID]
		if !bad {
			if cut {
				keep = append(keep, m)
			}
			continue
		}
		if !cut {
			keep, cut = append(make([]formats.Message, 0, len(p.d.copy)-1), p.d.copy[:i]...), true
		}
		p.d.bytes -= max(m.Size, 0)
		p.failed(&p.d, p.keys, m, p.heads[m.ID],
			fmt.Errorf("the source server ended the connection twice in a row when asked for this message; left out: %w", err))
	}
	if cut {
		p.d.copy = keep
	}
}
