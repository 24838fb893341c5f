package migrate

import (
	"encoding/binary"
	"strings"
)

// How a ledger entry writes its ID (ledger.go): the kind is two bits of
// the entry's first byte.
//
//	kindPlain   uvarint length, then the bytes
//	kindNumber  a number written the canonical way (an IMAP UID, an mbox
//	            offset): varint of the difference from the run's previous
//	            numeric ID (from 0 for the first)
//	kindHashed  a hashed file name (indexID): its 12 bytes, without the
//	            prefix
//	kindHex     hex digits of one case (a POP3 UIDL: Dovecot's is the UID
//	            and the UIDVALIDITY, 8 digits each): uvarint
//	            digits<<1|upper, then two digits a byte (an odd count's
//	            last low nibble 0); with entryLike, the digits and case of
//	            the run's previous hex ID: one byte p<<4|s, then the packed
//	            bytes but the first p and the last s, which are that ID's
//
// Dovecot's UIDLs of consecutive messages differ in one or two packed
// bytes: 2 or 3 bytes an ID, where the text took 17.
const (
	kindPlain  = 0
	kindNumber = entryNumber
	kindHashed = entryHashed
	kindHex    = entryNumber | entryHashed
	kindMask   = entryNumber | entryHashed

	// hexLike bounds the packed IDs written like the previous one (64
	// digits: a SHA-256 in hex).
	hexLike = 32
)

// runCoder carries what an entry is written relative to, within one run.
type runCoder struct {
	id       uint64
	validity uint32
	hexForm  uint64        // digits<<1|upper of the run's previous hex ID (0: none, or too long)
	hex      [hexLike]byte // its packed bytes
}

// appendID appends id to v, whose byte at bits is the entry's first, and
// sets the kind there.
func appendID(v []byte, bits int, c *runCoder, id string) []byte {
	if n, ok := idNumber(id); ok {
		v[bits] |= kindNumber
		v = binary.AppendVarint(v, int64(n-c.id))
		c.id = n
		return v
	}
	if isHashedID(id) {
		v[bits] |= kindHashed
		return append(v, id[len(hashedIDPrefix):]...)
	}
	upper := hexCase(id)
	if upper < 0 {
		v = binary.AppendUvarint(v, uint64(len(id)))
		return append(v, id...)
	}
	v[bits] |= kindHex
	form := uint64(len(id))<<1 | uint64(upper)
	var small [hexLike]byte // the packed bytes, where they fit (most IDs)
	packed := packHex(small[:0], id)
	n := len(packed)
	if n > hexLike || c.hexForm != form {
		c.hexForm = 0
		if n <= hexLike {
			c.hexForm, c.hex = form, small
		}
		v = binary.AppendUvarint(v, form)
		return append(v, packed...)
	}
	v[bits] |= entryLike
	p, s := 0, 0
	for p < min(n, 15) && packed[p] == c.hex[p] {
		p++
	}
	for s < min(n-p, 15) && packed[n-1-s] == c.hex[n-1-s] {
		s++
	}
	c.hex = small
	v = append(v, byte(p<<4|s))
	return append(v, packed[p:n-s]...)
}

// packHex appends hex digits of one case (hexCase) two to a byte, an odd
// count's last low nibble 0.
func packHex(b []byte, id string) []byte {
	for i := 0; i < len(id); i += 2 {
		x := unhex(id[i]) << 4
		if i+1 < len(id) {
			x |= unhex(id[i+1])
		}
		b = append(b, x)
	}
	return b
}

// readID reads what appendID wrote for an entry whose first byte is bits:
// the ID, or for a number its value (in r.id) and num true.
func (r *entryReader) readID(bits byte) (id string, num bool) {
	switch bits & kindMask {
	case kindNumber:
		r.id += uint64(r.varint())
		return "", true
	case kindHashed:
		return hashedIDPrefix + string(r.bytes(hashedIDBytes)), false
	case kindHex:
		return r.hexID(bits&entryLike != 0), false
	}
	return string(r.bytes(r.uvarint())), false
}

func (r *entryReader) hexID(like bool) string {
	form := r.hexForm
	if !like {
		form = r.uvarint()
	}
	digits := form >> 1
	if form == 0 || digits > 1<<20 {
		r.bad, r.v = true, nil
		return ""
	}
	n := int(digits+1) / 2
	var packed []byte
	if like {
		ps := r.bytes(1)
		if r.bad {
			return ""
		}
		p, s := int(ps[0]>>4), int(ps[0]&15)
		if p+s > n {
			r.bad, r.v = true, nil
			return ""
		}
		mid := r.bytes(uint64(n - p - s))
		if r.bad {
			return ""
		}
		packed = append(append(append(make([]byte, 0, n), r.hex[:p]...), mid...), r.hex[n-s:n]...)
	} else if packed = r.bytes(uint64(n)); r.bad {
		return ""
	}
	r.hexForm = 0
	if n <= hexLike {
		r.hexForm, r.hex = form, [hexLike]byte{}
		copy(r.hex[:], packed)
	}
	hexDigits := "0123456789abcdef"
	if form&1 != 0 {
		hexDigits = "0123456789ABCDEF"
	}
	s := make([]byte, digits)
	for i := range s {
		s[i] = hexDigits[packed[i/2]>>(4-4*(i%2))&15]
	}
	return string(s)
}

// hashedIDBytes is how much of a file name's SHA-256 indexID keeps.
const hashedIDBytes = 12

// isHashedID says id has the form indexID gives a hashed name, which the
// ledger writes as its 12 bytes alone (kindHashed).
func isHashedID(id string) bool {
	return len(id) == len(hashedIDPrefix)+hashedIDBytes && strings.HasPrefix(id, hashedIDPrefix)
}

// hexCase says whether s is at least two hex digits of one case: 0 lower
// (or digits only), 1 upper, -1 neither.
func hexCase(s string) int {
	if len(s) < 2 {
		return -1
	}
	lower, upper := false, false
	for i := range len(s) {
		switch c := s[i]; {
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'f':
			lower = true
		case 'A' <= c && c <= 'F':
			upper = true
		default:
			return -1
		}
	}
	switch {
	case lower && upper:
		return -1
	case upper:
		return 1
	}
	return 0
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
