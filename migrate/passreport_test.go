package migrate

import (
	"runtime"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// TestFolderReportLetsThePassGo: the report a pass returns, which the run
// keeps to its end, does not keep the pass alive, nor its ledgers. Its
// tally's list of stored messages pointed into the transfer, which points
// to the pass: a delta pass over a million-message account held every
// folder's ledgers by its end (67 MB of heap, where one folder's at a time
// took 22 MB).
func TestFolderReportLetsThePassGo(t *testing.T) {
	report := func(freed chan struct{}) FolderReport {
		p := &folderPass{e: &engine{}, ss: newFolderState(1)}
		p.ss.Set("1", Entry{Copied: true})
		runtime.SetFinalizer(p.ss, func(*FolderState) { close(freed) })
		p.d.copy = []formats.Message{{ID: "1", Size: 10}}
		tr := &transfer{p: p, d: &p.d, delivered: map[string]bool{}}
		tr.startTally()
		*tr.copied = append(*tr.copied, p.d.copy[0])
		tr.tally.nRecorded = 1
		return p.fr
	}
	freed := make(chan struct{})
	fr := report(freed)
	for i := 0; i < 20; i++ {
		runtime.GC()
		select {
		case <-freed:
			if got := fr.pass.counted(); len(got) != 1 || got[0].ID != "1" {
				t.Errorf("the report counts %v, want message 1", got)
			}
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Errorf("the pass's ledger is still reachable from its report")
	runtime.KeepAlive(fr)
}
