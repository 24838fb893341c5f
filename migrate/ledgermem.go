package migrate

import (
	"bytes"
	"iter"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"github.com/mailferry/mailferry/formats"
)

// The ledger of a folder as a pass holds it in memory (FolderState): one
// slot per message, found by ID.
//
// Numeric IDs (IMAP UIDs, mbox offsets) that arrive in ascending order, as
// the log of an IMAP folder gives them, go into a sorted array found by
// binary search, its slots kept as columns (slotArray): 33 bytes a message
// of a source folder, 21 of a destination folder's index. Other IDs
// (Maildir names, POP3 UIDLs) and numbers that came out of order go, when
// the log gives them as the folder is loaded, into an array sorted once
// at the end (nameArray), and when set later, into a map. Flag sets are
// kept once each per folder (most messages share one of a few).
//
// It replaced four maps keyed by ID (keys, copied, destination, base),
// several hundred bytes a message, which a delta pass over a changed
// 300,000-message folder held whole.

// Entry is what a folder's ledger holds of one message: its identity key
// (the first keyBytes bytes: ledgerKey), whether mailferry stored these
// exact bytes at the destination itself (src side), where (Dst, when the
// destination told) and the flags it last applied there (Base, when
// HasBase; shared: never written to).
type Entry struct {
	Key     formats.Key
	Copied  bool
	Dst     DstID
	Base    []string
	HasBase bool
}

// slot is an Entry as the ledger keeps it.
type slot struct {
	key  [keyBytes]byte
	dst  DstID
	base uint32 // 1 + the index of its flag set in bases; 0: no base
	bits uint8
}

const (
	slotLive   = 1 << 0
	slotCopied = 1 << 1
)

// slotArray holds the slots of the sorted array as columns: every entry's
// key and bits, and its destination and base only once an entry has one (a
// destination folder's index never does: 21 bytes a message with its UID,
// a source folder's 33).
type slotArray struct {
	keys [][keyBytes]byte
	bits []uint8
	meta []slotMeta // nil until an entry has a destination or a base
}

type slotMeta struct {
	dst  DstID
	base uint32
}

func (a *slotArray) len() int { return len(a.bits) }

func (a *slotArray) grow(n int) {
	a.keys, a.bits = slices.Grow(a.keys, n), slices.Grow(a.bits, n)
}

func (a *slotArray) at(i int) slot {
	s := slot{key: a.keys[i], bits: a.bits[i]}
	if a.meta != nil {
		s.dst, s.base = a.meta[i].dst, a.meta[i].base
	}
	return s
}

func (a *slotArray) put(i int, s slot) {
	a.keys[i], a.bits[i] = s.key, s.bits
	a.putMeta(i, s)
}

func (a *slotArray) putMeta(i int, s slot) {
	m := slotMeta{s.dst, s.base}
	if a.meta == nil {
		if m == (slotMeta{}) {
			return
		}
		a.meta = make([]slotMeta, len(a.bits), cap(a.bits))
	}
	a.meta[i] = m
}

func (a *slotArray) push(s slot) {
	a.keys, a.bits = append(a.keys, s.key), append(a.bits, s.bits)
	if a.meta != nil {
		a.meta = append(a.meta, slotMeta{})
	}
	a.putMeta(a.len()-1, s)
}

func (a *slotArray) clone() slotArray {
	return slotArray{slices.Clone(a.keys), slices.Clone(a.bits), slices.Clone(a.meta)}
}

// ledgerMem is the entries of one folder's ledger.
type ledgerMem struct {
	nums  []uint32 // ascending; ents.at(i) is nums[i]'s
	ents  slotArray
	names nameArray // the names the log gave when the folder was loaded
	other map[string]slot
	live  int
	// load, while the log is read (beginLoad to seal), takes the entries
	// that will go into names, in the log's order.
	load  *nameLoad
	bases [][]string
	index map[string]uint32 // a flag set joined by NUL -> its base number
	// hint is how many entries are coming (grow): the first entry sizes
	// the sorted array for them when it is a number, the map when a name.
	hint int
}

// grow makes room for about n entries, in the array or the map as the
// first entry set tells.
func (l *ledgerMem) grow(n int) {
	l.hint = n
}

// sized is the room the first entry makes for the entries to come.
func (l *ledgerMem) sized(numeric bool) {
	n := l.hint
	l.hint = 0
	switch {
	case n <= 0:
	case numeric:
		l.nums = slices.Grow(l.nums, n)
		l.ents.grow(n)
	case l.load != nil:
		l.load.ends = slices.Grow(l.load.ends, n)
		l.load.ents.grow(n)
	case l.other == nil:
		l.other = make(map[string]slot, n)
	}
}

// find is the position of numeric ID n in the sorted array, and whether it
// is there.
func (l *ledgerMem) find(id string) (n uint32, at int, found, numeric bool) {
	x, ok := idNumber(id)
	if !ok || x > math.MaxUint32 {
		return 0, 0, false, false
	}
	n = uint32(x)
	at, found = slices.BinarySearch(l.nums, n)
	return n, at, found, true
}

func (l *ledgerMem) get(id string) (slot, bool) {
	if _, at, found, _ := l.find(id); found {
		s := l.ents.at(at)
		return s, s.bits&slotLive != 0
	}
	if at, found := l.names.find(id); found {
		s := l.names.ents.at(at)
		return s, s.bits&slotLive != 0
	}
	s, ok := l.other[id]
	return s, ok
}

// getNum is get for the ID that is the number n, without its decimal form
// unless it is not in the sorted array and names are held.
func (l *ledgerMem) getNum(n uint32) (slot, bool) {
	if at, found := slices.BinarySearch(l.nums, n); found {
		s := l.ents.at(at)
		return s, s.bits&slotLive != 0
	}
	if len(l.names.starts) == 0 && len(l.other) == 0 {
		return slot{}, false
	}
	return l.get(strconv.FormatUint(uint64(n), 10))
}

// set puts s (live) under id, replacing any entry there.
func (l *ledgerMem) set(id string, s slot) {
	s.bits |= slotLive
	n, at, found, numeric := l.find(id)
	if l.hint > 0 {
		l.sized(numeric)
	}
	switch {
	case found:
		if l.ents.bits[at]&slotLive == 0 {
			l.live++
		}
		l.ents.put(at, s)
		return
	case l.load != nil:
		// A number goes to the load only below the array's last, which
		// only grows: it is never appended to the array later. (A
		// forget's tombstone may be above it; seal drops tombstones.)
		if numeric && at == len(l.nums) {
			l.push(n, s)
		} else {
			l.load.add(id, s)
		}
		return
	}
	if i, found := l.names.find(id); found {
		if l.names.ents.bits[i]&slotLive == 0 {
			l.live++
		}
		l.names.ents.put(i, s)
		return
	}
	if numeric && at == len(l.nums) && l.other[id].bits == 0 {
		l.push(n, s)
		return
	}
	if l.other == nil {
		l.other = map[string]slot{}
	}
	if _, ok := l.other[id]; !ok {
		l.live++
	}
	l.other[id] = s
}

// setNum is set for an ID that is the number n (the log's numeric
// entries), without its decimal form.
func (l *ledgerMem) setNum(n uint64, s slot) {
	if l.hint > 0 {
		l.sized(n <= math.MaxUint32)
	}
	if k := len(l.nums); n <= math.MaxUint32 && (k == 0 || uint32(n) > l.nums[k-1]) && len(l.other) == 0 {
		s.bits |= slotLive
		l.push(uint32(n), s)
		return
	}
	l.set(strconv.FormatUint(n, 10), s)
}

// push appends the entry of a number above every number in the array.
func (l *ledgerMem) push(n uint32, s slot) {
	l.nums = append(l.nums, n)
	l.ents.push(s)
	l.live++
}

func (l *ledgerMem) forget(id string) {
	_, at, found, _ := l.find(id)
	switch {
	case found:
		if l.ents.bits[at]&slotLive != 0 {
			l.ents.put(at, slot{})
			l.live--
		}
		return
	case l.load != nil:
		l.load.add(id, slot{}) // a tombstone
		return
	}
	if at, found := l.names.find(id); found {
		if l.names.ents.bits[at]&slotLive != 0 {
			l.names.ents.put(at, slot{})
			l.live--
		}
		return
	}
	if _, ok := l.other[id]; ok {
		delete(l.other, id)
		l.live--
	}
}

// baseOf is the base number of a flag set (followFlags' form), kept once.
func (l *ledgerMem) baseOf(flags []string) uint32 {
	j := strings.Join(flags, "\x00")
	if i, ok := l.index[j]; ok {
		return i
	}
	if l.index == nil {
		l.index = map[string]uint32{}
	}
	l.bases = append(l.bases, slices.Clip(flags))
	i := uint32(len(l.bases))
	l.index[j] = i
	return i
}

func (l *ledgerMem) slotOf(en Entry) slot {
	s := slot{dst: en.Dst}
	copy(s.key[:], en.Key[:keyBytes])
	if en.Copied {
		s.bits |= slotCopied
	}
	if en.HasBase {
		s.base = l.baseOf(followFlags(en.Base))
	}
	return s
}

func (l *ledgerMem) entry(s slot) Entry {
	en := Entry{Copied: s.bits&slotCopied != 0, Dst: s.dst}
	copy(en.Key[:], s.key[:])
	if s.base != 0 {
		en.Base, en.HasBase = l.bases[s.base-1], true
	}
	return en
}

func (l *ledgerMem) clone() ledgerMem {
	c := *l
	c.nums, c.ents = slices.Clone(l.nums), l.ents.clone()
	// The names are never written to; a clone is of a loaded ledger.
	c.names.ents, c.load = l.names.ents.clone(), nil
	c.other, c.index = maps.Clone(l.other), maps.Clone(l.index)
	c.bases = slices.Clip(l.bases) // its flag sets are never written to
	return c
}

// Len is how many messages the ledger holds.
func (fs *FolderState) Len() int { return fs.led.live }

// Key is the identity key the ledger holds for id.
func (fs *FolderState) Key(id string) (formats.Key, bool) {
	s, ok := fs.led.get(id)
	var k formats.Key
	copy(k[:], s.key[:])
	return k, ok
}

// GetNum is Get of the ID that is the number n (a UID).
func (fs *FolderState) GetNum(n uint32) (Entry, bool) {
	s, ok := fs.led.getNum(n)
	if !ok {
		return Entry{}, false
	}
	return fs.led.entry(s), true
}

// KeyNum is Key of the ID that is the number n (a UID).
func (fs *FolderState) KeyNum(n uint32) (formats.Key, bool) {
	s, ok := fs.led.getNum(n)
	var k formats.Key
	copy(k[:], s.key[:])
	return k, ok
}

// keyNumAt is KeyNum for a number in the array of numeric IDs, with its
// position there (the position destCopies' claims are kept by); ok is
// false for a number held elsewhere or not at all.
func (fs *FolderState) keyNumAt(n uint32) (k formats.Key, at int, ok bool) {
	at, found := slices.BinarySearch(fs.led.nums, n)
	if !found {
		return k, 0, false
	}
	s := fs.led.ents.at(at)
	copy(k[:], s.key[:])
	return k, at, s.bits&slotLive != 0
}

// Get is the ledger's entry for id.
func (fs *FolderState) Get(id string) (Entry, bool) {
	s, ok := fs.led.get(id)
	if !ok {
		return Entry{}, false
	}
	return fs.led.entry(s), true
}

// Set records en under id, as a State's Add of the same record does.
func (fs *FolderState) Set(id string, en Entry) {
	fs.led.set(id, fs.led.slotOf(en))
}

// Put records r (its ID and entry), as a State's Add does.
func (fs *FolderState) Put(r Record) {
	fs.Set(r.ID, Entry{Key: r.Key, Copied: r.Copied, Dst: r.Dst, Base: r.Base, HasBase: r.HasBase})
}

// Forget removes id's entry.
func (fs *FolderState) Forget(id string) { fs.led.forget(id) }

// All yields every entry: numeric IDs in ascending order first.
func (fs *FolderState) All() iter.Seq2[string, Entry] {
	return func(yield func(string, Entry) bool) {
		l := &fs.led
		for i := range l.ents.len() {
			if s := l.ents.at(i); s.bits&slotLive != 0 && !yield(strconv.FormatUint(uint64(l.nums[i]), 10), l.entry(s)) {
				return
			}
		}
		for i := range l.names.ents.len() {
			if s := l.names.ents.at(i); s.bits&slotLive != 0 && !yield(l.names.name(i), l.entry(s)) {
				return
			}
		}
		for id, s := range l.other {
			if !yield(id, l.entry(s)) {
				return
			}
		}
	}
}

// Keys yields the identity key of every entry.
func (fs *FolderState) Keys() iter.Seq[formats.Key] { return fs.keysExcept(nil) }

// keysExcept is Keys but for the entries of the array of numeric IDs
// whose bit is set in skip (by position: destCopies' claims).
func (fs *FolderState) keysExcept(skip bitSet) iter.Seq[formats.Key] {
	return func(yield func(formats.Key) bool) {
		l := &fs.led
		one := func(key [keyBytes]byte) bool {
			var k formats.Key
			copy(k[:], key[:])
			return yield(k)
		}
		for i, b := range l.ents.bits {
			if b&slotLive != 0 && !skip.has(i) && !one(l.ents.keys[i]) {
				return
			}
		}
		for i, b := range l.names.ents.bits {
			if b&slotLive != 0 && !one(l.names.ents.keys[i]) {
				return
			}
		}
		for _, s := range l.other {
			if !one(s.key) {
				return
			}
		}
	}
}

// clone is a copy of fs that shares nothing it could write to.
func (fs *FolderState) clone() *FolderState {
	c := *fs
	c.led = fs.led.clone()
	return &c
}

// nameArray holds entries by name sorted by name, the names in one arena
// that is never written to once the array is made (seal): about 25 bytes
// and the name's own a message, where a map of slots by name took about
// 170 (a POP3 maildrop's UIDLs, a Maildir destination's hashed names).
type nameArray struct {
	arena        []byte
	starts, ends []uint32 // name i is arena[starts[i]:ends[i]]
	ents         slotArray
}

func (a *nameArray) name(i int) string {
	if a.ends[i] == a.starts[i] {
		return ""
	}
	return unsafe.String(&a.arena[a.starts[i]], a.ends[i]-a.starts[i])
}

func (a *nameArray) find(id string) (int, bool) {
	n := len(a.starts)
	i := sort.Search(n, func(i int) bool { return a.name(i) >= id })
	return i, i < n && a.name(i) == id
}

// nameLoad is what the log gives for names while it is read: every set
// and forget (a slot that is not live) in the log's order, the last for
// each name being what holds.
type nameLoad struct {
	arena []byte
	ends  []uint32
	ents  slotArray
}

func (d *nameLoad) add(id string, s slot) {
	d.arena = append(d.arena, id...)
	d.ends = append(d.ends, uint32(len(d.arena)))
	d.ents.push(s)
}

// beginLoad starts reading the log: names go to a load until seal.
func (l *ledgerMem) beginLoad() { l.load = &nameLoad{} }

// seal ends reading the log: the last entry the log gave for each name
// goes into the sorted name array, if it is live.
func (l *ledgerMem) seal() {
	d := l.load
	l.load = nil
	if d == nil || len(d.ends) == 0 {
		return
	}
	start := func(i uint32) uint32 {
		if i == 0 {
			return 0
		}
		return d.ends[i-1]
	}
	name := func(i uint32) []byte { return d.arena[start(i):d.ends[i]] }
	order := make([]uint32, len(d.ends))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortStableFunc(order, func(a, b uint32) int {
		return bytes.Compare(name(a), name(b))
	})
	a := nameArray{arena: d.arena,
		starts: make([]uint32, 0, len(order)), ends: make([]uint32, 0, len(order))}
	a.ents.grow(len(order))
	for k, i := range order {
		if k+1 < len(order) && bytes.Equal(name(order[k+1]), name(i)) {
			continue // a later entry for the same name holds
		}
		s := d.ents.at(int(i))
		if s.bits&slotLive == 0 {
			continue
		}
		a.starts, a.ends = append(a.starts, start(i)), append(a.ends, d.ends[i])
		a.ents.push(s)
		l.live++
	}
	l.names = a
}

// idSet is a set of message IDs, as compact as the ledger's: the UIDs
// listed as unchanged (sorted already, and not copied), the other numbers
// in a sorted array, other IDs in a map.
type idSet struct {
	same  []uint32
	nums  []uint32
	other map[string]bool
}

// listedIDs is the set of the IDs of msgs and of the UIDs same (ascending).
func listedIDs(msgs []formats.Message, same []uint32) idSet {
	s := idSet{same: same}
	for _, m := range msgs {
		if n, ok := idNumber(m.ID); ok && n <= math.MaxUint32 {
			s.nums = append(s.nums, uint32(n))
			continue
		}
		if s.other == nil {
			s.other = map[string]bool{}
		}
		s.other[m.ID] = true
	}
	slices.Sort(s.nums)
	return s
}

func (s idSet) has(id string) bool {
	if n, ok := idNumber(id); ok && n <= math.MaxUint32 {
		_, inSame := slices.BinarySearch(s.same, uint32(n))
		_, inNums := slices.BinarySearch(s.nums, uint32(n))
		return inSame || inNums
	}
	return s.other[id]
}
