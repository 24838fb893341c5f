package migrate

import "github.com/mailferry/mailferry/formats"

// The counts of a folder copied in several passes (a lost connection
// resumes it; an interruption stops it) must say what the destination holds
// for this run: a message is "copied" once it is durable there and recorded
// in the state, and a message this run stored (or may have stored: the
// server's answer was lost) in an earlier pass, which a later pass then
// finds handled, is "copied" too, not "skipped".

// passTally is what one pass (folderPass.copy) sent to the destination.
type passTally struct {
	decided bool              // the pass got as far as deciding what to copy
	planned []formats.Message // what it decided to copy
	// stored is the transfer's list of what the destination took, in
	// order (shared, not copied: it can be long); the first nRecorded are
	// durable and recorded, and counted as copied.
	stored    *[]formats.Message
	nRecorded int
	unknown   []formats.Message // sent, fate unknown (connection lost before the answer)
	// bulkCopied and bulkBytes count what earlier windows of the same pass
	// recorded (window.go), not listed one by one.
	bulkCopied int
	bulkBytes  int64
}

func (t *passTally) counted() []formats.Message { return (*t.stored)[:t.nRecorded] }

func (t *passTally) unrecorded() []formats.Message { return (*t.stored)[t.nRecorded:] }

// lost notes messages sent whose fate is unknown.
func (t *passTally) lost(ms ...formats.Message) { t.unknown = append(t.unknown, ms...) }

// recorded counts what was stored as copied, now that it is durable and
// recorded. (The progress bar heard of each message when it was stored.)
func (t *passTally) recorded(fr *FolderReport) {
	for _, m := range t.unrecorded() {
		fr.Copied++
		fr.Bytes += max(m.Size, 0)
	}
	t.nRecorded = len(*t.stored)
}

// settle gives a folder's counts from all its passes, the last one (failed
// or not) at the end. The base is the last pass that decided what to copy:
// its found and skipped counts are the folder's, less the messages an
// earlier pass sent that it did not plan to copy (it found them handled, so
// they are at the destination: this run copied them).
func settle(passes []FolderReport) FolderReport {
	if len(passes) == 0 {
		return FolderReport{}
	}
	b := -1
	for i := len(passes) - 1; i >= 0; i-- {
		if t := passes[i].pass; t != nil && t.decided {
			b = i
			break
		}
	}
	if b < 0 { // no pass got to copying (a dry run, a no-op rerun, a failed start)
		b = len(passes) - 1
	}
	fr := passes[b]
	for _, p := range passes { // a pass that failed to connect knows no names
		if fr.Source == "" && p.Source != "" {
			fr.Source, fr.Destination, fr.Note = p.Source, p.Destination, joinNote(fr.Note, p.Note)
		}
	}
	if fr.pass == nil {
		return fr
	}
	copied := map[string]int64{}
	bulk, bulkBytes := 0, int64(0)
	for _, p := range passes {
		if p.pass != nil {
			for _, m := range p.pass.counted() {
				copied[m.ID] = max(m.Size, 0)
			}
			bulk, bulkBytes = bulk+p.pass.bulkCopied, bulkBytes+p.pass.bulkBytes
		}
	}
	planned := make(map[string]bool, len(fr.pass.planned))
	for _, m := range fr.pass.planned {
		planned[m.ID] = true
	}
	found := map[string]bool{} // sent earlier, handled by the base pass
	foundBulk := 0             // recorded by earlier windowed passes: handled too
	for _, p := range passes[:b] {
		if p.pass == nil {
			continue
		}
		foundBulk += p.pass.bulkCopied
		for _, ms := range [][]formats.Message{*p.pass.stored, p.pass.unknown} {
			for _, m := range ms {
				if !planned[m.ID] {
					found[m.ID] = true
					copied[m.ID] = max(m.Size, 0)
				}
			}
		}
	}
	fr.Skipped = max(fr.Skipped-len(found)-foundBulk, 0)
	fr.Copied, fr.Bytes = len(copied)+bulk, bulkBytes
	for _, n := range copied {
		fr.Bytes += n
	}
	return fr
}
