package imap

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// The bodies go in pipelined FETCHes: the next FETCH is sent before the
// answers to the one in hand are read, so the source streams without a
// pause between two commands (without it each FETCH began with a round
// trip in which nothing arrived).
//
// A message up to checkedMax bytes goes as BODY[] and is read whole before
// it is passed on (checkedItem): BODY[] is its stored bytes unless it held
// a NUL, which BODY[] cannot carry. Dovecot serves a stored NUL as 0x80
// and Cyrus sends a literal8 go-imap cannot read there, so a BODY[] of the
// listed size without a 0x80 byte is exact. One with a 0x80 byte is exact
// too where BINARY[] would not keep it as it is (an encoded or multipart
// message: the old path sends BODY[] for those as well); the others, and
// one of another size, are left to the one-command-at-a-time path, which
// asks their encoding and fetches them as BINARY[]. So the listing need not
// ask each message's encoding first, which made Dovecot open and parse
// every message twice: the source's CPU for a 200k copy fell from 7.7 s
// to 3.2 s, of which BINARY[] for the plain messages was about 1.5 s.
//
// go-imap routes each FETCH answer to the pending command whose UID set
// holds it, and the sets are disjoint (see fetchAhead for why each is read
// by a goroutine of its own). Whatever does not come back as planned (a
// message left by the check, a UID missing from the answers, a refused
// FETCH, a response go-imap cannot read) is left to Fetch's
// one-command-at-a-time path, which handles each case.

// checkedMax is the largest message read whole before it is passed on,
// the size the destination's spool holds too. A larger one goes the
// one-command-at-a-time way.
const checkedMax = spoolMaxSize

// checkedItem is BODY.PEEK[] taken only where exact (see above).
var checkedItem = fetchItem{body: bodyItem.body, check: exactBody}

// exactBody reports whether b, the BODY[] of msg, is its stored bytes for
// sure (see above).
func exactBody(msg formats.Message, b []byte) bool {
	if int64(len(b)) != msg.Size {
		return false
	}
	return bytes.IndexByte(b, 0x80) < 0 || !rawUnderBinary(formats.HeaderBlock(b))
}

// fetchJobs plans the pipelined FETCHes of msgs (each a checkedItem): per
// batch of fetchBatch, the messages of at most checkedMax bytes, sorted by
// UID. The larger ones are in no job: Fetch sends them its other way.
func fetchJobs(msgs []formats.Message) [][]formats.Message {
	var jobs [][]formats.Message
	small := make([]formats.Message, 0, len(msgs)) // not grown a message at a time: 45 MB of a 200k copy's allocations
	for _, msg := range msgs {
		if msg.Size >= 0 && msg.Size <= checkedMax {
			small = append(small, msg)
		}
	}
	slices.SortFunc(small, func(a, b formats.Message) int { return cmp.Compare(a.UID, b.UID) })
	for start := 0; start < len(small); start += fetchBatch {
		jobs = append(jobs, small[start:min(start+fetchBatch, len(small))])
	}
	return jobs
}

// fetchAhead runs the jobs sent began (sendAhead) with the next one always sent before the answers
// of the one in hand are all read. Each FETCH is read by a goroutine of
// its own: Dovecot runs pipelined FETCHes side by side and interleaves
// their answers, and go-imap hands a literal to its command's reader and
// waits for it to be read, so one reader for both would wait forever.
// deliverOne lets one message at a time through (it holds mu, which
// guards *fnErr too) and none after one failed (fetchAll's one). A
// FETCH the server refuses (a tagged NO or BAD) leaves its undelivered
// messages to the caller and the rest goes on; fn's error, a cancelled
// ctx or a broken connection ends it. Every FETCH sent is read to its end
// before fetchAhead returns.
func (m *IMAP) fetchAhead(ctx context.Context, sent *sentFetch,
	deliverOne func(formats.Message, imap.LiteralReader) error, mu *sync.Mutex, fnErr *error) error {
	jobs := sent.jobs
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	start := func(job []formats.Message, fc *imapclient.FetchCommand) chan error {
		// job is sorted by UID: a search, not a map of copies (two
		// maps of 1,000 messages were 3.4 MB of a 200k run's heap).
		find := func(uid uint32) (formats.Message, bool) {
			i, ok := slices.BinarySearchFunc(job, uid, func(msg formats.Message, uid uint32) int { return cmp.Compare(msg.UID, uid) })
			if !ok {
				return formats.Message{}, false
			}
			return job[i], true
		}
		if fc == nil {
			fc = m.sendFetch(job, checkedItem)
		}
		done := make(chan error, 1)
		go func() { done <- m.readFetch(ctx, fc, find, checkedItem, map[uint32]bool{}, deliverOne) }()
		return done
	}
	var inFlight []chan error
	next := 0
	for ; next < len(sent.fcs); next++ {
		inFlight = append(inFlight, start(jobs[next], sent.fcs[next]))
	}
	var err error
	for len(inFlight) > 0 {
		e := <-inFlight[0]
		inFlight = inFlight[1:]
		mu.Lock()
		failed := *fnErr
		mu.Unlock()
		if e != nil && err == nil && !refusedFetch(e, failed) {
			err = e
		}
		if err == nil && next < len(jobs) {
			inFlight = append(inFlight, start(jobs[next], nil))
			next++
		}
	}
	return err
}

// sentFetch is the jobs of a fetchAhead and the FETCHes of its first
// jobs (up to aheadJobs), sent and not yet read.
type sentFetch struct {
	jobs [][]formats.Message
	fcs  []*imapclient.FetchCommand
	// split is the answer to the encoding FETCH of the first batch of the
	// messages too large for the jobs (sendSplit), sent before them; nil
	// where there are none.
	split chan splitResult
}

// sendFetches sends, for a Fetch of msgs, the encoding FETCH of the first
// batch of its large messages (whose headers Dovecot then sends before it
// streams the small ones' bodies, so that the large ones' own FETCH can
// follow those at once: fetchLargeBeside) and the first of fetchAhead's
// FETCHes.
// It returns nil, sending nothing, where no message is small enough for
// those.
func (m *IMAP) sendFetches(msgs []formats.Message) *sentFetch {
	jobs := fetchJobs(msgs)
	if len(jobs) == 0 {
		return nil
	}
	var split chan splitResult
	if large := largeOnes(msgs); len(large) > 0 {
		split = m.sendSplit(large[:min(fetchBatch, len(large))])
	}
	s := m.sendAhead(jobs)
	s.split = split
	return s
}

// aheadJobs is how many of fetchAhead's FETCHes are in flight at once.
const aheadJobs = 2

// sendAhead sends the FETCHes of the first jobs of a fetchAhead.
func (m *IMAP) sendAhead(jobs [][]formats.Message) *sentFetch {
	s := &sentFetch{jobs: jobs}
	for _, job := range jobs[:min(aheadJobs, len(jobs))] {
		s.fcs = append(s.fcs, m.sendFetch(job, checkedItem))
	}
	return s
}

// refusedFetch reports whether err is the server's refusal of one FETCH (a
// tagged NO or BAD: the session goes on), not fn's error or a broken
// connection.
func refusedFetch(err, fnErr error) bool {
	var ie *imap.Error
	var re *migrate.RetryableError
	return fnErr == nil && errors.As(err, &ie) && !errors.As(err, &re)
}
