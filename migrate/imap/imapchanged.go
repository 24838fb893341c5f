package imap

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/formats"
	"github.com/mailferry/mailferry/migrate"
)

// The delta listing of a folder listed before (migrate.ChangeLister): with
// CONDSTORE, a folder whose HIGHESTMODSEQ moved costs one round trip: the
// EXAMINE, a UID SEARCH ALL (the UIDs, as ranges where the server has
// ESEARCH) and a UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE modseq), which
// answers only for the messages whose flags changed, sent together; then a
// full listing line only for the messages the engine does not know,
// instead of FLAGS, INTERNALDATE and RFC822.SIZE of every message.

var _ migrate.ChangeLister = (*IMAP)(nil)

// ListChanged lists a folder as List does, except for the messages known
// gives flags for: those whose flags changed since modseq come with their
// flags, Size -1 and no Date (listed partly), the others only by UID
// (same). Without CONDSTORE, or under another UIDVALIDITY than validity,
// it is List.
func (m *IMAP) ListChanged(ctx context.Context, folder formats.Folder, validity uint32, modseq uint64,
	known func(uid uint32) ([]string, bool)) (uint32, []formats.Message, []uint32, error) {
	if !m.caps.Has(imap.CapCondStore) || modseq == 0 || validity == 0 {
		v, msgs, err := m.List(ctx, folder)
		return v, msgs, nil, err
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	// All three at once. The FETCH's answers are read as they come, by a
	// goroutine of their own: Dovecot runs a SEARCH and a FETCH side by
	// side and may answer the FETCH first, and the client cannot read on
	// while an answer waits to be taken. If the EXAMINE fails, the
	// UIDVALIDITY is not the one recorded or the folder is empty (some
	// servers answer BAD to 1:* then), the other answers are dropped.
	m.settle()      // imapwrite.go
	m.selected = "" // a fresh EXAMINE: UIDVALIDITY and EXISTS
	selCmd := m.c.Select(folder.Name, &imap.SelectOptions{ReadOnly: true})
	search := m.searchAll()
	var all imap.UIDSet
	all.AddRange(1, 0) // 1:*
	fc := m.c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, ChangedSince: modseq})
	type flagsRead struct {
		changed map[uint32][]string
		err     error
	}
	read := make(chan flagsRead, 1)
	go func() {
		changed, err := changedFlags(fc)
		read <- flagsRead{changed, err}
	}()
	sd, err := selCmd.Wait()
	if err != nil {
		search.Wait()
		<-read
		return 0, nil, nil, m.selectErr(folder.Name, err)
	}
	m.selected, m.readOnly, m.seqUID, m.listed = folder.Name, true, nil, nil
	if sd.UIDValidity != validity || sd.NumMessages == 0 {
		search.Wait()
		<-read
		if sd.NumMessages == 0 && sd.UIDValidity == validity {
			return validity, nil, nil, nil
		}
		v, msgs, err := m.List(ctx, folder)
		return v, msgs, nil, err
	}
	uids, err := m.allUIDs(search)
	fr := <-read
	if err != nil {
		return 0, nil, nil, err
	}
	if fr.err != nil {
		return 0, nil, nil, m.wrap("fetch changed flags", fr.err)
	}
	msgs, same, unknown := knownMessages(uids, known, fr.changed)
	if len(unknown) > 0 {
		full, err := m.listUIDs(unknown)
		if err != nil {
			return 0, nil, nil, err
		}
		msgs = append(msgs, full...)
		sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	}
	return validity, msgs, same, nil
}

// Complete fills in Size, Date and Flags of messages ListChanged left
// partial (the engine copies one of them again).
func (m *IMAP) Complete(ctx context.Context, folder formats.Folder, msgs []formats.Message) ([]formats.Message, error) {
	if _, err := m.sel(folder.Name, true); err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { m.c.Close() })
	defer stop()
	uids := make([]uint32, len(msgs))
	for i, msg := range msgs {
		uids[i] = msg.UID
	}
	return m.listUIDs(uids)
}

// searchAll sends UID SEARCH ALL, RETURN (ALL) where the server has
// ESEARCH, for the selected folder.
func (m *IMAP) searchAll() *imapclient.SearchCommand {
	var opts *imap.SearchOptions
	if m.caps.Has(imap.CapESearch) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	return m.c.UIDSearch(&imap.SearchCriteria{}, opts)
}

// allUIDs is the answer of searchAll: the selected folder's UIDs in
// ascending order; it also maps sequence numbers to them.
func (m *IMAP) allUIDs(search *imapclient.SearchCommand) ([]uint32, error) {
	data, err := search.Wait()
	if err != nil {
		return nil, m.wrap("uid search all", err)
	}
	uids, err := searchUIDs(data.All)
	if err != nil {
		return nil, m.wrap("uid search all", err)
	}
	m.seqUID = make(seqUIDs, len(uids)+1)
	for i, u := range uids {
		m.seqUID.set(uint32(i+1), u)
	}
	return uids, nil
}

// searchUIDs lists the UIDs of a search result in ascending order. A UIDSet
// is sorted ranges that do not overlap (go-imap merges what it parses);
// walking them makes the list at its size, where AllUIDs grows it by
// doubling (17 MB of garbage for a 300,000-message folder).
func searchUIDs(all imap.NumSet) ([]uint32, error) {
	set, ok := all.(imap.UIDSet)
	if !ok {
		return nil, fmt.Errorf("the server answered with sequence numbers")
	}
	n := 0
	for _, r := range set {
		if r.Start == 0 || r.Stop < r.Start { // a dynamic range: a server bug
			return nil, fmt.Errorf("the server answered with the range %v", r)
		}
		n += int(r.Stop-r.Start) + 1
	}
	uids := make([]uint32, 0, n)
	for _, r := range set {
		for u := r.Start; ; u++ {
			uids = append(uids, uint32(u))
			if u == r.Stop {
				break
			}
		}
	}
	return uids, nil
}

// changedFlags reads the answer of a UID FETCH (UID FLAGS) (CHANGEDSINCE):
// the flags of each message whose flags changed, by UID.
func changedFlags(fc *imapclient.FetchCommand) (map[uint32][]string, error) {
	changed := map[uint32][]string{}
	err := eachListed(fc, func(_ uint32, buf *imapclient.FetchMessageBuffer) {
		changed[uint32(buf.UID)] = cleanFlags(buf.Flags)
	})
	return changed, err
}

// knownMessages splits uids (ascending) into the messages known gives
// flags for whose flags changed (listed partly, with their flags: Size -1),
// those whose flags did not (same) and the UIDs to list whole.
// same is made in uids' array, which it overwrites.
func knownMessages(uids []uint32, known func(uint32) ([]string, bool), changed map[uint32][]string) (msgs []formats.Message, same, unknown []uint32) {
	same = uids[:0] // never ahead of the UID being read
	for _, u := range uids {
		if _, ok := known(u); !ok {
			unknown = append(unknown, u)
			continue
		}
		flags, ok := changed[u]
		if !ok {
			same = append(same, u)
			continue
		}
		msgs = append(msgs, formats.Message{ID: strconv.FormatUint(uint64(u), 10), UID: u, Size: -1, Flags: flags})
	}
	return msgs, same, unknown
}

// listUIDs lists UID, FLAGS, INTERNALDATE and RFC822.SIZE of these
// messages of the selected folder.
func (m *IMAP) listUIDs(uids []uint32) ([]formats.Message, error) {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	var msgs []formats.Message
	fc := m.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, RFC822Size: true})
	err := eachListed(fc, func(_ uint32, buf *imapclient.FetchMessageBuffer) {
		msgs = append(msgs, listed(buf, cleanFlags(buf.Flags)))
	})
	if err != nil {
		return nil, m.wrap("fetch list", err)
	}
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].UID < msgs[j].UID })
	return msgs, nil
}
