package migrate

import (
	"fmt"
	"slices"
	"strconv"
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
	msg := func(id string) formats.Message {
		uid, _ := strconv.Atoi(id)
		return formats.Message{ID: id, UID: uint32(uid), Size: 10}
	}
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
		lost   []string               // messages whose copies the destination lost (LostReporter)
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
		{name: "three with one key, the first's copy lost: that one copied again", dedup: DedupFolder,
			msgs: []string{"1", "2", "3"}, ledger: map[string]formats.Key{"1": k(1), "2": k(1), "3": k(1)},
			copied: []string{"1", "2", "3"}, dest: []formats.Key{k(1), k(1)}, lost: []string{"1"},
			want: want{copy: []string{"1"}, skipped: 2, recopied: 1, deletable: []string{"2", "3"}}},
		{name: "named lost but still there: skipped", dedup: DedupFolder, msgs: []string{"1", "2"},
			ledger: map[string]formats.Key{"1": k(1), "2": k(2)}, copied: []string{"1", "2"},
			dest: []formats.Key{k(1), k(2)}, lost: []string{"1"},
			want: want{skipped: 2, deletable: []string{"2", "1"}}},
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
		{name: "account: three with one key, the first's copy lost: that one copied again", dedup: DedupAccount,
			msgs: []string{"1", "2", "3"}, ledger: map[string]formats.Key{"1": k(1), "2": k(1), "3": k(1)},
			copied: []string{"1", "2", "3"}, acct: account{k(1): 2}, lost: []string{"1"},
			want: want{copy: []string{"1"}, skipped: 2, recopied: 1, deletable: []string{"2", "3"}}},
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
		// Without --delete-source (listSkipped false) the skipped messages
		// are not listed: the rest of the decision is the same.
		// With asSame the messages the ledger knows come as a delta
		// listing gives those whose flags did not change: by UID alone.
		for _, v := range []struct{ listSkipped, asSame bool }{{true, false}, {false, false}, {true, true}, {false, true}} {
			listSkipped := v.listSkipped
			t.Run(fmt.Sprintf("%s/listSkipped=%v/asSame=%v", c.name, listSkipped, v.asSame), func(t *testing.T) {
				var msgs []formats.Message
				var same []uint32
				for _, id := range c.msgs {
					if _, known := c.ledger[id]; v.asSame && known {
						same = append(same, msg(id).UID)
						continue
					}
					msgs = append(msgs, msg(id))
				}
				ledger := newFolderState(1)
				for id, key := range c.ledger {
					ledger.Set(id, Entry{Key: key, Copied: slices.Contains(c.copied, id)})
				}
				avail := keyCopies(newKeyPool(len(c.dest), slices.Values(c.dest)))
				acct := account{}
				for k, n := range c.acct {
					acct[k] = n
				}
				d := decision{listSkipped: listSkipped}
				lost := map[string]bool{}
				for _, id := range c.lost {
					lost[id] = true
				}
				unknown, keys, occ := decideLedger(msgs, same, ledger, lost, avail, c.dedup, acct, &d)
				for id, key := range c.keys {
					if _, ok := keys[id]; !ok {
						keys[id] = key
					}
				}
				decideKeys(unknown, keys, avail, occ, c.dedup, acct, "src", &d)
				var matched []string
				for _, r := range d.matched {
					matched = append(matched, r.ID)
					if r.Copied {
						t.Errorf("a key match %s is recorded as copied", r.ID)
					}
				}
				w := c.want
				if !listSkipped {
					w.deletable, w.keyOnly = nil, nil
				}
				got := want{copy: ids(d.copy), deletable: ids(d.deletable), keyOnly: ids(d.keyOnly),
					skipped: d.skipped, recopied: d.recopied, matched: matched}
				if !slices.Equal(got.copy, w.copy) || !slices.Equal(got.deletable, w.deletable) ||
					!slices.Equal(got.keyOnly, w.keyOnly) || !slices.Equal(got.matched, w.matched) ||
					got.skipped != w.skipped || got.recopied != w.recopied {
					t.Errorf("got  %+v\nwant %+v", got, w)
				}
				if len(d.copy)+d.skipped != len(c.msgs) {
					t.Errorf("%d copied + %d skipped != %d messages", len(d.copy), d.skipped, len(c.msgs))
				}
			})
		}
	}
}

func TestDecideFlags(t *testing.T) {
	k := func(b byte) formats.Key { return formats.Key{b} }
	type entry struct {
		key    formats.Key
		base   []string // nil: unknown
		dst    uint32   // recorded destination UID (0: none)
		copied bool
	}
	cases := []struct {
		name    string
		src     map[string][]string // source ID -> current flags
		ledger  map[string]entry
		dest    map[string]formats.Key // destination index
		skip    []string
		want    []FlagChange
		updated int
		bases   map[string][]string // new bases recorded
		have    map[string][]string // the destination's flags, by destination ID
	}{
		{name: "unchanged: nothing to do",
			src: map[string][]string{"1": {`\Seen`}}, ledger: map[string]entry{"1": {k(1), []string{`\Seen`}, 7, true}},
			dest: map[string]formats.Key{"7": k(1)}},
		{name: "added and removed at the source follow",
			src:    map[string][]string{"1": {`\Answered`, "$Label1"}},
			ledger: map[string]entry{"1": {k(1), []string{`\Seen`}, 7, true}}, dest: map[string]formats.Key{"7": k(1)},
			want: []FlagChange{{Add: []string{"$Label1", `\Answered`}, Remove: []string{`\Seen`}, IDs: []string{"7"}}}, updated: 1,
			bases: map[string][]string{"1": {"$Label1", `\Answered`}}},
		{name: "same change grouped; \\Deleted and \\Recent never follow",
			src:    map[string][]string{"1": {`\Flagged`, `\Deleted`}, "2": {`\Flagged`, `\Recent`}},
			ledger: map[string]entry{"1": {k(1), []string{}, 7, true}, "2": {k(2), []string{}, 8, true}},
			dest:   map[string]formats.Key{"7": k(1), "8": k(2)},
			want:   []FlagChange{{Add: []string{`\Flagged`}, IDs: []string{"7", "8"}}}, updated: 2,
			bases: map[string][]string{"1": {`\Flagged`}, "2": {`\Flagged`}}},
		{name: "unknown base: only added; the base is recorded even without a change",
			src:    map[string][]string{"1": {`\Seen`}, "2": {}},
			ledger: map[string]entry{"1": {key: k(1)}, "2": {key: k(2)}}, dest: map[string]formats.Key{"3": k(1), "4": k(2)},
			want: []FlagChange{{Add: []string{`\Seen`}, IDs: []string{"3"}}}, updated: 1,
			bases: map[string][]string{"1": {`\Seen`}, "2": {}}},
		{name: "unknown base, the copy's flags known: only what it lacks is added, and counted",
			src:    map[string][]string{"1": {`\Seen`, "$Label1"}, "2": {`\Seen`}},
			ledger: map[string]entry{"1": {key: k(1)}, "2": {key: k(2)}}, dest: map[string]formats.Key{"3": k(1), "4": k(2)},
			have: map[string][]string{"3": {`\Seen`, `\Flagged`}, "4": {`\Seen`}},
			want: []FlagChange{{Add: []string{"$Label1"}, IDs: []string{"3"}}}, updated: 1,
			bases: map[string][]string{"1": {"$Label1", `\Seen`}, "2": {`\Seen`}}},
		{name: "recorded UID gone or holding another key: found by key instead",
			src:    map[string][]string{"1": {`\Seen`}},
			ledger: map[string]entry{"1": {k(1), []string{}, 7, true}}, dest: map[string]formats.Key{"7": k(9), "12": k(1)},
			want: []FlagChange{{Add: []string{`\Seen`}, IDs: []string{"12"}}}, updated: 1,
			bases: map[string][]string{"1": {`\Seen`}}},
		{name: "two source messages, one key: each its own destination copy",
			src:    map[string][]string{"1": {`\Seen`}, "2": {`\Seen`}},
			ledger: map[string]entry{"1": {key: k(1)}, "2": {k(1), []string{}, 5, true}}, dest: map[string]formats.Key{"5": k(1), "6": k(1)},
			want: []FlagChange{{Add: []string{`\Seen`}, IDs: []string{"6", "5"}}}, updated: 2,
			bases: map[string][]string{"1": {`\Seen`}, "2": {`\Seen`}}},
		{name: "not at the destination, unknown, or copied now: left alone",
			src:    map[string][]string{"1": {`\Seen`}, "2": {`\Seen`}, "3": {`\Seen`}},
			ledger: map[string]entry{"1": {key: k(1)}, "3": {key: k(3)}}, dest: map[string]formats.Key{"9": k(3)}, skip: []string{"3"}},
		{name: "keywords compare case-insensitively",
			src:    map[string][]string{"1": {"$label1"}},
			ledger: map[string]entry{"1": {k(1), []string{"$Label1"}, 7, true}}, dest: map[string]formats.Key{"7": k(1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ledger := newFolderState(1)
			var msgs []formats.Message
			for _, id := range []string{"1", "2", "3"} {
				if f, ok := c.src[id]; ok {
					msgs = append(msgs, formats.Message{ID: id, Flags: f})
				}
				if e, ok := c.ledger[id]; ok {
					en := Entry{Key: e.key, Base: e.base, HasBase: e.base != nil, Copied: e.copied}
					if e.dst != 0 {
						en.Dst = DstID{Validity: 3, UID: e.dst}
					}
					ledger.Set(id, en)
				}
			}
			skip := map[string]bool{}
			for _, id := range c.skip {
				skip[id] = true
			}
			plan := decideFlags(msgs, nil, ledger, indexOf(c.dest), 3, skip, "src", c.have)
			if fmt.Sprint(plan.changes) != fmt.Sprint(c.want) || plan.updated != c.updated {
				t.Errorf("changes %v (%d updated), want %v (%d)", plan.changes, plan.updated, c.want, c.updated)
			}
			bases := map[string][]string{}
			for _, r := range plan.records {
				bases[r.ID] = r.Base
				if en, _ := ledger.Get(r.ID); !r.HasBase || r.Copied != en.Copied || r.Dst != en.Dst || r.Key != en.Key {
					t.Errorf("record %+v does not keep the ledger entry", r)
				}
			}
			if fmt.Sprint(bases) != fmt.Sprint(c.bases) && !(len(bases) == 0 && len(c.bases) == 0) {
				t.Errorf("bases %v, want %v", bases, c.bases)
			}
		})
	}
}

func TestDecideDeletions(t *testing.T) {
	k := func(b byte) formats.Key { return formats.Key{b} }
	ledger := newFolderState(1)
	add := func(id string, key formats.Key, copied bool, dst DstID) {
		ledger.Set(id, Entry{Key: key, Copied: copied, Dst: dst})
	}
	add("1", k(1), true, DstID{3, 11}) // still at the source
	add("2", k(2), true, DstID{3, 12}) // expunged at the source: deleted
	add("3", k(3), false, DstID{})     // matched, never copied: kept
	add("4", k(4), true, DstID{})      // copied without APPENDUID: kept
	add("5", k(5), true, DstID{2, 15}) // copied into an earlier UIDVALIDITY: kept
	add("6", k(6), true, DstID{3, 16}) // its copy was removed at the destination already
	add("7", k(7), true, DstID{3, 17}) // the UID now holds another message: kept
	add("10", k(8), true, DstID{3, 9}) // expunged at the source: deleted
	dest := map[string]formats.Key{"11": k(1), "12": k(2), "13": k(3), "14": k(4), "15": k(5), "17": k(99), "9": k(8), "20": k(20)}
	msgs := []formats.Message{{ID: "1"}}
	uids, gone := decideDeletions(msgs, nil, ledger, indexOf(dest), 3)
	if !slices.Equal(uids, []string{"9", "12"}) || !slices.Equal(gone, []string{"10", "2"}) {
		t.Errorf("deletes %v (ledger %v), want [9 12] ([10 2])", uids, gone)
	}
	// Message 1 listed as unchanged (by UID alone) is listed all the same.
	uids, gone = decideDeletions(nil, []uint32{1}, ledger, indexOf(dest), 3)
	if !slices.Equal(uids, []string{"9", "12"}) || !slices.Equal(gone, []string{"10", "2"}) {
		t.Errorf("with 1 unchanged: deletes %v (ledger %v), want [9 12] ([10 2])", uids, gone)
	}
}

// noNewMail decides whether --sync-deletions may delete in each folder's
// pass: only when no planned source folder has a UIDNEXT (or UIDVALIDITY)
// the state has not seen, so that no pass copies a message that could be a
// move from another folder.
func TestNoNewMailDecidesDeletionsInThePass(t *testing.T) {
	folder := func(name string, validity, next uint32) PlannedFolder {
		return PlannedFolder{Source: formats.Folder{Name: name, Path: []string{name}, Validity: validity, UIDNext: next},
			Dest: []string{name}}
	}
	e := &engine{state: NewMemState()}
	a, b := folder("A", 7, 10), folder("B", 7, 20)
	for _, pf := range []PlannedFolder{a, b} {
		if err := e.state.SetMark(SideSource, ledgerFolder(pf), pf.Source.Validity, pf.Source.UIDNext, 5); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name string
		plan []PlannedFolder
		want bool
	}{
		{"every folder as recorded", []PlannedFolder{a, b}, true},
		{"new mail in B", []PlannedFolder{a, folder("B", 7, 21)}, false},
		{"B's UIDVALIDITY changed", []PlannedFolder{a, folder("B", 8, 20)}, false},
		{"a folder never seen", []PlannedFolder{a, folder("C", 7, 3)}, false},
		{"a server without UIDNEXT", []PlannedFolder{a, folder("B", 7, 0)}, false},
	} {
		if got, err := e.noNewMail(c.plan); err != nil || got != c.want {
			t.Errorf("%s: %v %v, want %v", c.name, got, err, c.want)
		}
	}
}

// indexOf is a destination index holding keys by ID.
func indexOf(keys map[string]formats.Key) *FolderState {
	fs := newFolderState(0)
	for id, k := range keys {
		fs.Set(id, Entry{Key: k})
	}
	return fs
}

// mapToDest gives the messages asked for the copies the whole listing
// would give them: by recorded UID, else by key in the listing's order,
// past the copies recorded for the others and those the listing's
// earlier messages take.
func TestMapToDestAsksForSome(t *testing.T) {
	k := func(b byte) formats.Key { return formats.Key{b} }
	ledger := newFolderState(1)
	ledger.Set("1", Entry{Key: k(1)})                                  // matched: no recorded UID
	ledger.Set("2", Entry{Key: k(1)})                                  // the same key
	ledger.Set("3", Entry{Key: k(1), Copied: true, Dst: DstID{3, 10}}) // recorded at 10
	ledger.Set("4", Entry{Key: k(2), Copied: true, Dst: DstID{3, 12}})
	dest := indexOf(map[string]formats.Key{"10": k(1), "11": k(1), "12": k(2), "13": k(1)})
	all := []formats.Message{{ID: "1"}, {ID: "2"}, {ID: "3"}, {ID: "4"}, {ID: "5"}}
	whole := mapToDest(all, all, nil, nil, ledger, dest, 3)
	if fmt.Sprint(whole) != "map[1:11 2:13 3:10 4:12]" {
		t.Fatalf("the whole listing maps %v", whole)
	}
	for _, ids := range [][]string{{"2"}, {"4"}, {"2", "3"}, {"1"}, {}} {
		var want []formats.Message
		expect := map[string]string{}
		for _, id := range ids {
			want = append(want, formats.Message{ID: id})
			expect[id] = whole[id]
		}
		if got := mapToDest(want, all, nil, nil, ledger, dest, 3); fmt.Sprint(got) != fmt.Sprint(expect) {
			t.Errorf("asked for %v: %v, want %v", ids, got, expect)
		}
		// The same with the others listed as unchanged, by UID alone.
		var listed []formats.Message
		var same []uint32
		for _, m := range all {
			uid, _ := strconv.Atoi(m.ID)
			if slices.Contains(ids, m.ID) {
				listed = append(listed, formats.Message{ID: m.ID, UID: uint32(uid)})
			} else {
				same = append(same, uint32(uid))
			}
		}
		if got := mapToDest(want, listed, same, nil, ledger, dest, 3); fmt.Sprint(got) != fmt.Sprint(expect) {
			t.Errorf("asked for %v, the others unchanged: %v, want %v", ids, got, expect)
		}
	}
	set := listedIDs([]formats.Message{{ID: "7"}, {ID: "3"}, {ID: "UIDL-1"}, {ID: "4294967296"}, {ID: "007"}}, []uint32{5, 9})
	for id, want := range map[string]bool{"7": true, "3": true, "UIDL-1": true, "4294967296": true, "007": true, "5": true, "9": true, "6": false, "07": false, "x": false} {
		if set.has(id) != want {
			t.Errorf("listedIDs has(%s) = %v", id, !want)
		}
	}
}

// decideGone finds a gone message's copy by key after every listed
// message, as it did when the whole listing came as messages: a listed
// message after the changed ones, given by UID alone, keeps the copy it
// would have had.
func TestDecideGoneComesAfterTheListing(t *testing.T) {
	k := formats.Key{1}
	ledger := newFolderState(1)
	for _, id := range []string{"1", "2", "3"} { // copied, no recorded UID (an archive's)
		ledger.Set(id, Entry{Key: k, Copied: true})
	}
	dest := indexOf(map[string]formats.Key{"10": k, "11": k})
	for _, v := range []struct {
		msgs []formats.Message
		same []uint32
	}{
		{[]formats.Message{{ID: "1", UID: 1}, {ID: "2", UID: 2}}, nil},
		{[]formats.Message{{ID: "1", UID: 1}}, []uint32{2}},
		{nil, []uint32{1, 2}},
	} {
		gone, where := decideGone(v.msgs, v.same, ledger, dest, 3)
		if len(gone) != 1 || gone[0] != "3" || where["3"] != "" {
			t.Errorf("listing %v, unchanged %v: gone %v, copies %v; want 3 gone without a copy", v.msgs, v.same, gone, where)
		}
	}
}
