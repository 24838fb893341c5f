package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/mailferry/mailferry/formats"
)

// The ledger of a folder, as the state keeps it on disk: its "log" bucket
// (state.go) holds, under 8-byte big-endian sequence numbers, runs of
// entries appended by Add and Forget; reading the runs in order, a later
// entry for an ID replaces an earlier one and a forget entry removes it.
// One entry:
//
//	1 byte    bits: 1 Copied, 2 base flags known, 4 destination UID known,
//	          8 forget (nothing follows the ID), 16|64 the ID's kind,
//	          32 the destination UIDVALIDITY is the run's previous one,
//	          128 a hex ID written like the run's previous one
//	ID        as its kind says (ledgerid.go: a number, a hashed file
//	          name, hex digits, or its length and bytes)
//	16 bytes  identity key (its first 16 bytes: ledgerKey)
//	[bits&4]  [not bits&32] uvarint destination UIDVALIDITY; uvarint
//	          destination UID
//	[bits&2]  1 byte system flags (\Seen 1, \Answered 2, \Flagged 4,
//	          \Draft 8; 128: no keywords, and nothing more follows), else
//	          uvarint n, n uvarint indexes into the folder's keyword table
//	          (its "keywords" value: names joined by NUL)
//
// A message copied IMAP to IMAP costs about 21 bytes on the source side
// and 18 on the destination side (29 for a Maildir file's hashed name; a
// POP3 source's Dovecot UIDL 1 or 2 bytes more than a UID), plus a share of its
// run's and page's overhead (TestStateBytesPerMessage holds the file to 64
// bytes a message for both).
const (
	entryCopied = 1 << 0
	entryBase   = 1 << 1
	entryDst    = 1 << 2
	entryForget = 1 << 3
	entryNumber = 1 << 4
	entrySameV  = 1 << 5
	entryHashed = 1 << 6
	entryLike   = 1 << 7

	baseNoKeywords = 1 << 7 // in the base's system-flag byte
)

// keyBytes is how much of an identity key the ledger keeps and compares.
const keyBytes = 16

// ledgerKey is an identity key as the engine compares it with the ledger:
// its first 128 bits (a chance collision among a billion messages is about
// 1 in 10^21), the rest zero.
func ledgerKey(k formats.Key) formats.Key {
	clear(k[keyBytes:])
	return k
}

// indexID is how the destination index keeps a destination message's ID:
// as it is when it is a number (an IMAP UID, an mbox offset), else (a
// Maildir unique name of 40 to 60 bytes) as a 12-byte hash, which is all
// the index needs to recognise it.
// hashedIDPrefix starts an ID that indexID hashed (never a UID or offset).
const hashedIDPrefix = "\xff#"

func indexID(id string) string {
	if _, ok := idNumber(id); ok {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hashedIDPrefix + string(sum[:hashedIDBytes])
}

// sinkIDs gives back the names the sink knows for IDs the destination
// index keeps hashed (indexID): the sink's index of the folder is read once,
// only when some of ids are hashed, and holds on to just the names asked
// for. IDs not found stay as they are.
func sinkIDs(ctx context.Context, dst Sink, folder formats.Folder, ids []string) ([]string, error) {
	want := map[string]string{}
	for _, id := range ids {
		if strings.HasPrefix(id, hashedIDPrefix) {
			want[id] = ""
		}
	}
	if len(want) == 0 {
		return ids, nil
	}
	err := dst.Index(ctx, folder, func(id string) bool {
		if h := indexID(id); h != id {
			if _, ok := want[h]; ok {
				want[h] = id
			}
		}
		return true // known: no header is read
	}, func(string, formats.Key) error { return nil })
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		if name := want[id]; name != "" {
			out[i] = name
		}
	}
	return out, nil
}

// idNumber is id as a number, when it is one written the canonical way.
// It runs for every ledger lookup, names included, so it allocates
// nothing: strconv.ParseUint makes an error value for each name it refuses
// (11.5 MB over a 59,540-message POP3 rerun), and formatting n again to
// compare made a string for each number.
func idNumber(id string) (uint64, bool) {
	if id == "" || len(id) > 1 && id[0] == '0' {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(id); i++ {
		d := uint64(id[i]) - '0'
		if d > 9 || n > (math.MaxUint64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// DstID is where mailferry stored a message: the destination folder's
// UIDVALIDITY and the UID APPENDUID gave.
type DstID struct {
	Validity, UID uint32
}

// sysFlags are the system flags the base keeps as bits; \Deleted and
// \Recent are never followed.
var sysFlags = [...]string{formats.FlagSeen, formats.FlagAnswered, formats.FlagFlagged, formats.FlagDraft}

// followFlags is the set of flags that flags follow compares: canonical
// spelling, no \Recent or \Deleted (deletions are --sync-deletions'
// business), no duplicates (keywords compared case-insensitively), sorted.
func followFlags(flags []string) []string {
	out := slices.DeleteFunc(formats.CleanFlags(flags), func(f string) bool { return f == formats.FlagDeleted })
	if len(out) > 1 {
		slices.SortFunc(out, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	}
	return out
}

// flagDiff returns src - base and base - src.
func flagDiff(src, base []string) (add, remove []string) {
	in := func(set []string, f string) bool {
		for _, x := range set {
			if strings.EqualFold(x, f) {
				return true
			}
		}
		return false
	}
	for _, f := range src {
		if !in(base, f) {
			add = append(add, f)
		}
	}
	for _, f := range base {
		if !in(src, f) {
			remove = append(remove, f)
		}
	}
	return add, remove
}

// keywordTable is one folder's keyword names, indexed by position.
type keywordTable struct {
	names []string
	index map[string]int
	grown bool
}

func loadKeywords(b *bolt.Bucket) *keywordTable {
	t := &keywordTable{index: map[string]int{}}
	if v := b.Get([]byte("keywords")); len(v) > 0 {
		t.names = strings.Split(string(v), "\x00")
	}
	for i, n := range t.names {
		t.index[strings.ToLower(n)] = i
	}
	return t
}

func (t *keywordTable) id(name string) int {
	if i, ok := t.index[strings.ToLower(name)]; ok {
		return i
	}
	t.names = append(t.names, name)
	t.index[strings.ToLower(name)] = len(t.names) - 1
	t.grown = true
	return len(t.names) - 1
}

func (t *keywordTable) save(b *bolt.Bucket) error {
	if !t.grown {
		return nil
	}
	t.grown = false
	return b.Put([]byte("keywords"), []byte(strings.Join(t.names, "\x00")))
}

// appendEntry appends r's entry (a forget entry when forget) to v, a run
// that c has seen so far.
func appendEntry(v []byte, c *runCoder, r Record, kw *keywordTable, forget bool) []byte {
	bits := byte(0)
	switch {
	case forget:
		bits |= entryForget
	default:
		if r.Copied {
			bits |= entryCopied
		}
		if r.HasBase {
			bits |= entryBase
		}
		if r.Dst.UID != 0 {
			bits |= entryDst
			if r.Dst.Validity == c.validity {
				bits |= entrySameV
			}
		}
	}
	v = append(v, bits)
	v = appendID(v, len(v)-1, c, r.ID)
	if forget {
		return v
	}
	v = append(v, r.Key[:keyBytes]...)
	if r.Dst.UID != 0 {
		if bits&entrySameV == 0 {
			v = binary.AppendUvarint(v, uint64(r.Dst.Validity))
			c.validity = r.Dst.Validity
		}
		v = binary.AppendUvarint(v, uint64(r.Dst.UID))
	}
	if r.HasBase {
		v = appendBase(v, r.Base, kw)
	}
	return v
}

func appendBase(v []byte, flags []string, kw *keywordTable) []byte {
	var sys byte
	var kws []uint64
	for _, f := range followFlags(flags) {
		bit := -1
		for i, s := range sysFlags {
			if f == s {
				bit = i
			}
		}
		if bit >= 0 {
			sys |= 1 << bit
		} else {
			kws = append(kws, uint64(kw.id(f)))
		}
	}
	if len(kws) == 0 {
		return append(v, sys|baseNoKeywords)
	}
	v = append(v, sys)
	v = binary.AppendUvarint(v, uint64(len(kws)))
	for _, k := range kws {
		v = binary.AppendUvarint(v, k)
	}
	return v
}

var errEntry = errors.New("state: a damaged ledger entry")

// entryReader reads the entries of one run.
type entryReader struct {
	v   []byte
	bad bool
	runCoder
	bases [256]uint32 // the base number of each system-flag byte without keywords
}

func (r *entryReader) uvarint() uint64 {
	x, n := binary.Uvarint(r.v)
	if n <= 0 {
		r.bad, r.v = true, nil
		return 0
	}
	r.v = r.v[n:]
	return x
}

func (r *entryReader) varint() int64 {
	x, n := binary.Varint(r.v)
	if n <= 0 {
		r.bad, r.v = true, nil
		return 0
	}
	r.v = r.v[n:]
	return x
}

func (r *entryReader) bytes(n uint64) []byte {
	if uint64(len(r.v)) < n {
		r.bad, r.v = true, nil
		return nil
	}
	b := r.v[:n]
	r.v = r.v[n:]
	return b
}

// decodeRun applies the entries of one run to fs, and gives the coder as
// it stands after them.
func decodeRun(fs *FolderState, v []byte, kw []string) (runCoder, error) {
	r := &entryReader{v: v}
	l := &fs.led
	for len(r.v) > 0 && !r.bad {
		bits := r.bytes(1)[0]
		id, number := r.readID(bits)
		if bits&entryForget != 0 {
			if number {
				id = strconv.FormatUint(r.id, 10)
			}
			l.forget(id)
			continue
		}
		s, err := decodeEntry(l, bits, r, kw)
		if err != nil {
			return runCoder{}, err
		}
		if number {
			l.setNum(r.id, s)
		} else {
			l.set(id, s)
		}
	}
	if r.bad {
		return runCoder{}, errEntry
	}
	return r.runCoder, nil
}

// decodeEntry reads the rest of one entry (after its ID).
func decodeEntry(l *ledgerMem, bits byte, r *entryReader, kw []string) (slot, error) {
	var s slot
	copy(s.key[:], r.bytes(keyBytes))
	if bits&entryCopied != 0 {
		s.bits |= slotCopied
	}
	if bits&entryDst != 0 {
		if bits&entrySameV == 0 {
			r.validity = uint32(r.uvarint())
		}
		s.dst = DstID{Validity: r.validity, UID: uint32(r.uvarint())}
	}
	if bits&entryBase != 0 {
		sys := r.bytes(1)
		if len(sys) == 0 {
			return s, errEntry
		}
		var n uint64
		if sys[0]&baseNoKeywords == 0 {
			n = r.uvarint()
		}
		if n == 0 && r.bases[sys[0]] != 0 { // most bases are system flags only: their number is kept by byte
			s.base = r.bases[sys[0]]
			return s, nil
		}
		keywords := n
		base := []string{}
		for i, f := range sysFlags {
			if sys[0]&(1<<i) != 0 {
				base = append(base, f)
			}
		}
		for ; n > 0 && !r.bad; n-- {
			i := r.uvarint()
			if i >= uint64(len(kw)) {
				return s, errEntry
			}
			base = append(base, kw[i])
		}
		s.base = l.baseOf(followFlags(base))
		if keywords == 0 {
			r.bases[sys[0]] = s.base
		}
	}
	return s, nil
}

// ModSeq reads the HIGHESTMODSEQ through which a folder's flags were
// followed (0 if none).
func (s *boltState) ModSeq(side Side, name string) (uint64, error) {
	var v uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte(side)).Bucket([]byte(name)); b != nil {
			if x := b.Get([]byte("modseq")); len(x) == 8 {
				v = binary.BigEndian.Uint64(x)
			}
		}
		return nil
	})
	return v, err
}

// SetModSeq records the HIGHESTMODSEQ through which a folder's flags were
// followed.
func (s *boltState) SetModSeq(side Side, name string, modseq uint64) error {
	return s.update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte(side)).CreateBucketIfNotExists([]byte(name))
		if err != nil {
			return err
		}
		return b.Put([]byte("modseq"), binary.BigEndian.AppendUint64(nil, modseq))
	})
}

// Forget removes the entries of recs (Side, Folder and ID) in one
// transaction: it appends forget entries to their folders' logs.
func (s *boltState) Forget(recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.update(func(tx *bolt.Tx) error {
		return appendRuns(tx, recs, true)
	})
}
