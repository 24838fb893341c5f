package migrate

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// TestStateLetsGoOfMappedPages: after Add, the state file's pages that
// reading it mapped into the process are no longer resident in it (they
// stay in the page cache). Without dropMapped, reading a 20,000-message
// folder's log keeps about 450 kB of the file resident.
func TestStateLetsGoOfMappedPages(t *testing.T) {
	st, path := stateOf20000(t)
	defer st.Close()
	// Touch every page of the folder's log without Folder, which lets go
	// of them itself (below).
	st.(*boltState).db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(SideSource)).Bucket([]byte("INBOX\x00INBOX")).Bucket(logBucket).ForEach(func(_, v []byte) error { return nil })
	})
	read := mappedKB(t, path)
	if read < 256 {
		t.Fatalf("reading 20000 messages mapped only %d kB of the state: the test cannot tell", read)
	}
	if err := st.Add([]Record{{Side: SideSource, Folder: "INBOX\x00INBOX", ID: "20001", Copied: true}}); err != nil {
		t.Fatal(err)
	}
	if after := mappedKB(t, path); after > 64 {
		t.Errorf("after Add, %d kB of the state file are still resident in the process (%d kB after reading it)", after, read)
	}
}

// TestStateFolderLetsGoOfMappedPages: loading a folder's ledger leaves no
// more of the state file resident than before. A delta pass over a
// 300,000-message folder read about 13 MB of the file for its two sides,
// and kept it in its resident set until the next write.
func TestStateFolderLetsGoOfMappedPages(t *testing.T) {
	st, path := stateOf20000(t)
	defer st.Close()
	before := mappedKB(t, path)
	if fs, err := st.Folder(SideSource, "INBOX\x00INBOX"); err != nil || fs.Len() != 20000 {
		t.Fatalf("read back: %v", err)
	}
	if after := mappedKB(t, path); after > before+64 {
		t.Errorf("after Folder, %d kB of the state file are resident in the process (%d kB before)", after, before)
	}
}

// stateOf20000 is a state file holding a 20,000-message folder.
func stateOf20000(t *testing.T) (State, string) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	const n, batch = 20000, 1000
	for lo := 1; lo <= n; lo += batch {
		var recs []Record
		for uid := lo; uid < lo+batch; uid++ {
			key := ledgerKey(formats.IdentityKey([]byte(fmt.Sprintf("Message-ID: <%d@example.org>\r\n\r\n", uid))))
			recs = append(recs, Record{Side: SideSource, Folder: "INBOX\x00INBOX", ID: strconv.Itoa(uid), Key: key, Copied: true})
		}
		if err := st.Add(recs); err != nil {
			st.Close()
			t.Fatal(err)
		}
	}
	return st, path
}

// mappedKB is the resident size of the process's mappings of path, from
// /proc/self/smaps.
func mappedKB(t *testing.T, path string) int {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	kb, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			kb += n
		}
	}
	return kb
}

// TestStateFolderLoadLetsGoAsItReads: while a folder's ledger loads, the
// state file's pages it read do not pile up in the process. The load held
// them all until its end: at a million messages, 21-26 MB for each side of
// a 300,000-message folder, a third of a delta pass's peak RSS, where its
// log is about 13 MB: the workers write their folders' runs at once, so a
// folder's pages lie among the others', and the kernel maps the pages
// around each one read (fault-around). Here two folders of 100,000
// messages were written in alternate batches of 100.
func TestStateFolderLoadLetsGoAsItReads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenState(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const n, batch = 100_000, 100
	for lo := 1; lo <= n; lo += batch {
		for _, folder := range []string{"A\x00A", "B\x00B"} {
			var recs []Record
			for uid := lo; uid < lo+batch; uid++ {
				key := ledgerKey(formats.IdentityKey([]byte(fmt.Sprintf("Message-ID: <%d.%s@example.org>\r\n\r\n", uid, folder[:1]))))
				recs = append(recs, Record{Side: SideSource, Folder: folder, ID: strconv.Itoa(uid), Key: key, Copied: true})
			}
			if err := st.Add(recs); err != nil {
				t.Fatal(err)
			}
		}
	}
	room, oldAfter := mappedReadRoom, afterRun
	defer func() { mappedReadRoom, afterRun = room, oldAfter }()
	mappedReadRoom = 64 << 10
	before, peak, runs := mappedKB(t, path), 0, 0
	afterRun = func() {
		if runs++; runs%16 == 0 {
			peak = max(peak, mappedKB(t, path))
		}
	}
	if fs, err := st.Folder(SideSource, "A\x00A"); err != nil || fs.Len() != n {
		t.Fatalf("read back: %v", err)
	}
	// A run is about 1 kB: the log is about runs kB.
	if limit := before + 1024; peak > limit {
		t.Errorf("while Folder read %d runs, up to %d kB of the state file were resident in the process (%d kB before; want at most %d)", runs, peak, before, limit)
	} else {
		t.Logf("%d runs read; at most %d kB of the state file resident (%d kB before)", runs, peak, before)
	}
}
