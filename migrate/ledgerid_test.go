package migrate

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzLedgerIDs: whatever IDs a run holds, in whatever order (numbers,
// hashed names, hex digits of either case, like the one before or not,
// anything else), the run reads back the same IDs; and whatever bytes a
// damaged run holds, reading it ends with an answer (its IDs or
// errEntry), never a panic.
func FuzzLedgerIDs(f *testing.F) {
	f.Add([]byte("0000000167500ED0\x000000000267500ED0\x000000010067500ED0\x0042\x00042\x00UIDL-1\x00"))
	f.Add([]byte("\xff#0123456789ab\x00abcdef\x00ABCDEF\x00aBcD\x00" + string(bytes.Repeat([]byte("f"), 70)) + "\x00" + string(bytes.Repeat([]byte("f"), 40))))
	f.Add([]byte{0x50, 0x21, 0, 0, 0, 1, 0x67, 0x50, 0xed, 0, 0xd0, 0x34, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		// As a damaged run: an answer, no panic.
		decodeRun(newFolderState(0), data, []string{"$Label1"})

		// As IDs, one per NUL-separated field (each written once: a
		// later entry for the same ID would replace it).
		var ids []string
		seen := map[string]bool{}
		for _, id := range bytes.Split(data, []byte{0}) {
			if s := string(id); s != "" && !seen[s] {
				seen[s] = true
				ids = append(ids, s)
			}
		}
		var v []byte
		var c runCoder
		for i, id := range ids {
			v = appendEntry(v, &c, Record{ID: id, Key: [32]byte{byte(i)}}, &keywordTable{}, false)
		}
		fs := newFolderState(0)
		if _, err := decodeRun(fs, v, nil); err != nil {
			t.Fatalf("a run of %q does not read back: %v", ids, err)
		}
		var got []string
		for id := range fs.All() {
			got = append(got, id)
		}
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Fatalf("wrote %q, read back %q", ids, got)
		}
	})
}
