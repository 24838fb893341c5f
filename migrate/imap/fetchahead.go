package imap

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// The bodies of a first copy go in pipelined FETCHes: where the listing
// told every message's encoding (ListForCopy, ListUIDs), Fetch knows
// before it asks which messages go as BINARY[] and which as BODY[], so the
// next FETCH is sent before the answers to the one in hand are read. The
// source then streams without a pause between two commands: without it
// each FETCH (two per 1,000 messages where both kinds are present) began
// with a round trip in which nothing arrived.
//
// go-imap routes each FETCH answer to the pending command whose UID set
// holds it, and the sets are disjoint (see fetchAhead for why each is read
// by a goroutine of its own). Whatever does not come back
// as planned (a BINARY[] of another size, a BINARY the server refused, a
// UID missing from the answers, a response go-imap cannot read) is left
// to Fetch's one-command-at-a-time path, which handles each case.

// fetchJob is one FETCH of the pipelined path.
type fetchJob struct {
	msgs []formats.Message
	item fetchItem
}

// encodingsKnown reports whether the listing told every message's
// encoding.
func encodingsKnown(msgs []formats.Message) bool {
	for _, msg := range msgs {
		if msg.Encoding == formats.EncodingUnknown {
			return false
		}
	}
	return true
}

// fetchJobs plans the pipelined FETCHes of msgs (all with a known
// encoding): per batch of fetchBatch, BINARY[] of those it keeps as they
// are, then BODY[] of the others, each sorted by UID.
func fetchJobs(msgs []formats.Message) []fetchJob {
	var jobs []fetchJob
	for start := 0; start < len(msgs); start += fetchBatch {
		raw, rest, unknown := byEncoding(msgs[start:min(start+fetchBatch, len(msgs))])
		rest = append(rest, unknown...) // none: the caller checked encodingsKnown
		byUID := func(a, b formats.Message) int { return cmp.Compare(a.UID, b.UID) }
		slices.SortFunc(raw, byUID)
		slices.SortFunc(rest, byUID)
		if len(raw) > 0 {
			jobs = append(jobs, fetchJob{msgs: raw, item: binaryItem})
		}
		if len(rest) > 0 {
			jobs = append(jobs, fetchJob{msgs: rest, item: bodyItem})
		}
	}
	return jobs
}

// byEncoding sorts msgs by what the listing learnt of their encoding:
// those BINARY[] keeps as they are (raw), the others (rest), and those it
// did not look at (unknown).
func byEncoding(msgs []formats.Message) (raw, rest, unknown []formats.Message) {
	for _, msg := range msgs {
		switch msg.Encoding {
		case formats.EncodingIdentity:
			raw = append(raw, msg)
		case formats.EncodingEncoded:
			rest = append(rest, msg)
		default:
			unknown = append(unknown, msg)
		}
	}
	return raw, rest, unknown
}

// fetchAhead runs jobs with the next one always sent before the answers
// of the one in hand are all read. Each FETCH is read by a goroutine of
// its own: Dovecot runs pipelined FETCHes side by side and interleaves
// their answers, and go-imap hands a literal to its command's reader and
// waits for it to be read, so one reader for both would wait forever. One
// message at a time reaches deliver, and none after deliver failed. A
// FETCH the server refuses (a tagged NO or BAD) leaves its undelivered
// messages to the caller and the rest goes on; fn's error, a cancelled
// ctx or a broken connection ends it. Every FETCH sent is read to its end
// before fetchAhead returns.
func (m *IMAP) fetchAhead(ctx context.Context, jobs []fetchJob,
	deliver func(formats.Message, imap.LiteralReader) error, fnErr *error) error {
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	var mu sync.Mutex // one message at a time, in deliver and *fnErr
	deliverOne := func(msg formats.Message, lit imap.LiteralReader) error {
		mu.Lock()
		defer mu.Unlock()
		if *fnErr != nil {
			return *fnErr // a reader beside the one that failed: stop
		}
		return deliver(msg, lit)
	}
	start := func(j *fetchJob) chan error {
		// j.msgs is sorted by UID: a search, not a map of copies (two
		// maps of 1,000 messages were 3.4 MB of a 200k run's heap).
		find := func(uid uint32) (formats.Message, bool) {
			i, ok := slices.BinarySearchFunc(j.msgs, uid, func(msg formats.Message, uid uint32) int { return cmp.Compare(msg.UID, uid) })
			if !ok {
				return formats.Message{}, false
			}
			return j.msgs[i], true
		}
		fc := m.sendFetch(j.msgs, j.item)
		done := make(chan error, 1)
		go func() { done <- m.readFetch(ctx, fc, find, j.item, map[uint32]bool{}, deliverOne) }()
		return done
	}
	var inFlight []chan error
	next := 0
	for ; next < len(jobs) && next < 2; next++ {
		inFlight = append(inFlight, start(&jobs[next]))
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
			inFlight = append(inFlight, start(&jobs[next]))
			next++
		}
	}
	return err
}

// refusedFetch reports whether err is the server's refusal of one FETCH (a
// tagged NO or BAD: the session goes on), not fn's error or a broken
// connection.
func refusedFetch(err, fnErr error) bool {
	var ie *imap.Error
	var re *migrate.RetryableError
	return fnErr == nil && errors.As(err, &ie) && !errors.As(err, &re)
}
