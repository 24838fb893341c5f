package migrate

import (
	"fmt"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

func msgs(ids ...string) []formats.Message {
	out := make([]formats.Message, len(ids))
	for i, id := range ids {
		out[i] = formats.Message{ID: id, Size: 10}
	}
	return out
}

// settle: a message sent by an earlier pass and found handled by the last
// is copied, not skipped; one sent earlier and copied again (it had not
// arrived) is counted once; a pass that failed to connect keeps the names.
func TestSettleCountsEarlierPassesAsCopied(t *testing.T) {
	p1 := FolderReport{Source: "INBOX", Destination: "INBOX", Counts: Counts{Found: 7, Skipped: 1, Copied: 2}}
	p1stored := msgs("a", "b", "b2")
	p1.pass = &passTally{decided: true, planned: msgs("a", "b", "b2", "c", "d", "e"),
		stored: &p1stored, nRecorded: 2, unknown: msgs("c", "d")}
	p2 := FolderReport{} // could not connect
	// The last pass: a, b recorded, c found at the destination (the
	// answer was lost), d and e copied now; x was there before the run.
	// b2 was stored but not recorded (the flush failed): found there too.
	p3 := FolderReport{Source: "INBOX", Destination: "INBOX", Counts: Counts{Found: 7, Skipped: 5, Copied: 2}}
	p3stored := msgs("d", "e")
	p3.pass = &passTally{decided: true, planned: msgs("d", "e"), stored: &p3stored, nRecorded: 2}
	fr := settle([]FolderReport{p1, p2, p3})
	if fr.Copied != 6 || fr.Skipped != 1 || fr.Found != 7 || fr.Bytes != 60 || fr.Source != "INBOX" {
		t.Errorf("got %+v, want found 7, copied 6, skipped 1, 60 bytes", fr.Counts)
	}
	// Interrupted in a pass that never decided: what was counted stays.
	fr = settle([]FolderReport{p1, p2})
	if fr.Copied != 2 || fr.Source != "INBOX" || fr.Found != 7 {
		t.Errorf("interrupted after a failed reconnect: got %+v %q, want copied 2 of INBOX", fr.Counts, fr.Source)
	}
	// A dry run has no tally: its counts are what it says.
	dry := FolderReport{Source: "INBOX", Counts: Counts{Found: 3, Copied: 3}}
	if fr = settle([]FolderReport{dry}); fr.Copied != 3 {
		t.Errorf("dry run: copied %d, want 3", fr.Copied)
	}
}

// settle: a pass copied in windows counts what its earlier windows recorded
// in bulk; when a later pass finds those handled, they are copied, not
// skipped.
func TestSettleCountsWindowsInBulk(t *testing.T) {
	p1 := FolderReport{Source: "INBOX", Counts: Counts{Found: 120}}
	p1stored := msgs("w1", "w2", "w3")
	p1.pass = &passTally{decided: true, planned: msgs("w1", "w2", "w3", "w4"), stored: &p1stored, nRecorded: 2,
		bulkCopied: 100, bulkBytes: 1000}
	if fr := settle([]FolderReport{p1}); fr.Copied != 102 || fr.Bytes != 1020 {
		t.Errorf("one windowed pass: got %+v, want copied 102, 1020 bytes", fr.Counts)
	}
	// The next pass lists the whole folder: the 102 recorded and w3 (stored,
	// not recorded) are there, w4 and 30 more are copied now.
	p2 := FolderReport{Source: "INBOX", Counts: Counts{Found: 136, Skipped: 103 + 2}}
	p2stored := msgs("w4")
	for i := range 30 {
		p2stored = append(p2stored, formats.Message{ID: fmt.Sprint("n", i), Size: 10})
	}
	p2.pass = &passTally{decided: true, planned: p2stored, stored: &p2stored, nRecorded: 31}
	if fr := settle([]FolderReport{p1, p2}); fr.Copied != 134 || fr.Skipped != 2 || fr.Found != 136 {
		t.Errorf("after a second pass: got %+v, want found 136, copied 134, skipped 2", fr.Counts)
	}
}
