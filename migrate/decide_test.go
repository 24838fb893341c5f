package migrate

import (
	"slices"
	"testing"

	"github.com/mailferry/mailferry/formats"
)

// account is an accountView over a fixed count of copies per key.
type account map[formats.Key]int

func (a account) holds(k formats.Key, n int) bool { return a[k] >= n }
func (a account) claim(k formats.Key, n int) bool {
	if a[k] >= n {
		return false
	}
	a[k] = n
	return true
}

func TestDecide(t *testing.T) {
	k := func(b byte) formats.Key { return formats.Key{b} }
	msg := func(id string) formats.Message { return formats.Message{ID: id, Size: 10} }
	type want struct {
		copy, deletable, keyOnly []string
		skipped, recopied        int
		matched                  []string
	}
	cases := []struct {
		name   string
		dedup  Dedup
		msgs   []string
		ledger map[string]formats.Key // source ledger: handled ID -> key
		copied []string               // of those, stored by mailferry
		dest   []formats.Key          // keys the destination folder holds
		acct   account                // --dedup account: copies per key anywhere
		keys   map[string]formats.Key // keys of unrecorded messages (their headers)
		want   want
	}{
		{name: "new messages are copied", dedup: DedupFolder, msgs: []string{"1", "2"},
			keys: map[string]formats.Key{"1": k(1), "2": k(2)},
			want: want{copy: []string{"1", "2"}}},
		{name: "copied earlier and still there: skipped, deletable", dedup: DedupFolder, msgs: []string{"1"},
			ledger: map[string]formats.Key{"1": k(1)}, copied: []string{"1"}, dest: []formats.Key{k(1)},
			want: want{skipped: 1, deletable: []string{"1"}}},
		{name: "copied earlier, lost at the destination: copied again", dedup: DedupFolder, msgs: []string{"1", "2"},
			ledger: map[string]formats.Key{"1": k(1), "2": k(2)}, copied: []string{"1", "2"}, dest: []formats.Key{k(2)},
			want: want{copy: []string{"1"}, skipped: 1, recopied: 1, deletable: []string{"2"}}},
		{name: "key collision: skipped, never deletable", dedup: DedupFolder, msgs: []string{"1"},
			dest: []formats.Key{k(1)}, keys: map[string]formats.Key{"1": k(1)},
			want: want{skipped: 1, keyOnly: []string{"1"}, matched: []string{"1"}}},
		{name: "matched by key in an earlier run: still not deletable", dedup: DedupFolder, msgs: []string{"1"},
			ledger: map[string]formats.Key{"1": k(1)}, dest: []formats.Key{k(1)},
			want: want{skipped: 1, keyOnly: []string{"1"}}},
		{name: "two source messages, one destination copy: one copied", dedup: DedupFolder, msgs: []string{"1", "2"},
			dest: []formats.Key{k(7)}, keys: map[string]formats.Key{"1": k(7), "2": k(7)},
			want: want{copy: []string{"2"}, skipped: 1, keyOnly: []string{"1"}, matched: []string{"1"}}},
		{name: "ledger uses the destination copy first", dedup: DedupFolder, msgs: []string{"1", "2"},
			ledger: map[string]formats.Key{"2": k(7)}, copied: []string{"2"}, dest: []formats.Key{k(7)}, keys: map[string]formats.Key{"1": k(7)},
			want: want{copy: []string{"1"}, skipped: 1, deletable: []string{"2"}}},
		{name: "dedup off copies what the key matches", dedup: DedupOff, msgs: []string{"1"},
			dest: []formats.Key{k(1)}, keys: map[string]formats.Key{"1": k(1)},
			want: want{copy: []string{"1"}}},
		{name: "dedup off: recorded and lost is copied again", dedup: DedupOff, msgs: []string{"1"},
			ledger: map[string]formats.Key{"1": k(1)}, copied: []string{"1"},
			want: want{copy: []string{"1"}, recopied: 1}},
		{name: "account: in another folder counts as there", dedup: DedupAccount, msgs: []string{"1", "2"},
			acct: account{k(1): 1}, keys: map[string]formats.Key{"1": k(1), "2": k(2)},
			want: want{copy: []string{"2"}, skipped: 1, keyOnly: []string{"1"}, matched: []string{"1"}}},
		{name: "account: recorded but gone everywhere is copied again", dedup: DedupAccount, msgs: []string{"1"},
			ledger: map[string]formats.Key{"1": k(1)}, copied: []string{"1"}, acct: account{},
			want: want{copy: []string{"1"}, recopied: 1}},
	}
	ids := func(ms []formats.Message) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var msgs []formats.Message
			for _, id := range c.msgs {
				msgs = append(msgs, msg(id))
			}
			ledger := newFolderState(1)
			for id, key := range c.ledger {
				ledger.IDs[id] = key
			}
			for _, id := range c.copied {
				ledger.Copied[id] = true
			}
			avail := map[formats.Key]int{}
			for _, key := range c.dest {
				avail[key]++
			}
			if c.acct == nil {
				c.acct = account{}
			}
			var d decision
			unknown, keys, occ := decideLedger(msgs, ledger, avail, c.dedup, c.acct, &d)
			for id, key := range c.keys {
				if _, ok := keys[id]; !ok {
					keys[id] = key
				}
			}
			decideKeys(unknown, keys, avail, occ, c.dedup, c.acct, "src", &d)
			var matched []string
			for _, r := range d.matched {
				matched = append(matched, r.ID)
				if r.Copied {
					t.Errorf("a key match %s is recorded as copied", r.ID)
				}
			}
			got := want{copy: ids(d.copy), deletable: ids(d.deletable), keyOnly: ids(d.keyOnly),
				skipped: d.skipped, recopied: d.recopied, matched: matched}
			if !slices.Equal(got.copy, c.want.copy) || !slices.Equal(got.deletable, c.want.deletable) ||
				!slices.Equal(got.keyOnly, c.want.keyOnly) || !slices.Equal(got.matched, c.want.matched) ||
				got.skipped != c.want.skipped || got.recopied != c.want.recopied {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
			if len(d.copy)+d.skipped != len(msgs) {
				t.Errorf("%d copied + %d skipped != %d messages", len(d.copy), d.skipped, len(msgs))
			}
		})
	}
}
