package memserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start("demo", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func dial(t *testing.T, s *Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(s.User, s.Password).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// allFolders is DemoFolders plus the parents Add creates.
func allFolders() []string {
	set := map[string]bool{}
	for _, f := range DemoFolders {
		parts := strings.Split(f, "/")
		for i := range parts {
			set[strings.Join(parts[:i+1], "/")] = true
		}
	}
	var l []string
	for f := range set {
		l = append(l, f)
	}
	sort.Strings(l)
	return l
}

func TestDemoMessagesDeterministic(t *testing.T) {
	a, b := DemoMessages(1, 300), DemoMessages(1, 300)
	if len(a) != 300 || !reflect.DeepEqual(a, b) {
		t.Fatal("two calls with the same seed differ")
	}
	c := DemoMessages(2, 300)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Body, c[i].Body) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 1 and 2 share %d identical bodies", same)
	}
	if DemoMessages(1, 0) != nil {
		t.Error("n=0 should return nil")
	}
	if got := DemoMessages(7, 3); len(got) != 3 {
		t.Errorf("n=3: got %d messages", len(got))
	}
}

var msgIDRe = regexp.MustCompile(`^<[0-9a-f]{16}\.\d+@demo\.mailferry\.invalid>$`)

// stats counts the variety DemoMessages promises.
type stats struct {
	encodedNames, qWords, bWords, nonASCIISubjects int
	alternative, mixed, rfc822, attachments        int
	minAtt, maxAtt                                 int
	rfc2231Names, qpParts, eightBitParts, flowed   int
	replies                                        int
	flags                                          map[string]int
}

func TestDemoMessagesShape(t *testing.T) {
	msgs := DemoMessages(1, 300)
	st := stats{flags: map[string]int{}, minAtt: 1 << 30}
	ids := map[string]int{}
	folders := map[string]int{}
	total := 0
	dec := new(mime.WordDecoder)

	for i, m := range msgs {
		total += len(m.Body)
		folders[m.Folder]++
		where := fmt.Sprintf("message %d (%s)", i, m.Folder)

		// Line endings and line lengths.
		crlfs := bytes.Count(m.Body, []byte("\r\n"))
		if bytes.Count(m.Body, []byte("\n")) != crlfs || bytes.Count(m.Body, []byte("\r")) != crlfs {
			t.Fatalf("%s: bare CR or LF", where)
		}
		if !bytes.HasSuffix(m.Body, []byte("\r\n")) {
			t.Errorf("%s: no final CRLF", where)
		}
		for _, l := range bytes.Split(m.Body, []byte("\r\n")) {
			if len(l) > 998 {
				t.Fatalf("%s: line of %d bytes", where, len(l))
			}
		}

		// Dates.
		if m.Date.Location() != time.UTC || m.Date.Nanosecond() != 0 ||
			m.Date.Year() < 2023 || m.Date.Year() > 2024 {
			t.Errorf("%s: bad internal date %v", where, m.Date)
		}
		if i > 0 && m.Date.Before(msgs[i-1].Date) {
			t.Errorf("%s: not in date order", where)
		}
		if m.Folder == "Archive/2023" && m.Date.Year() != 2023 || m.Folder == "Archive/2024" && m.Date.Year() != 2024 {
			t.Errorf("%s: dated %v", where, m.Date)
		}

		// Header.
		pm, err := mail.ReadMessage(bytes.NewReader(m.Body))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		h := pm.Header
		for _, k := range []string{"Message-Id", "Date", "From", "To", "Subject", "Mime-Version"} {
			if h.Get(k) == "" {
				t.Errorf("%s: no %s", where, k)
			}
		}
		id := h.Get("Message-Id")
		if !msgIDRe.MatchString(id) {
			t.Errorf("%s: Message-ID %q", where, id)
		}
		if j, dup := ids[id]; dup {
			t.Errorf("%s: Message-ID %s also used by message %d", where, id, j)
		}
		ids[id] = i
		if d, err := h.Date(); err != nil || !d.Equal(m.Date) {
			t.Errorf("%s: Date header %q (%v) does not match internal date %v", where, h.Get("Date"), err, m.Date)
		}
		for _, k := range []string{"From", "To"} {
			raw := h.Get(k)
			addrs, err := h.AddressList(k)
			if err != nil || len(addrs) == 0 {
				t.Errorf("%s: %s %q: %v", where, k, raw, err)
				continue
			}
			for _, a := range addrs {
				if a.Name == "" {
					t.Errorf("%s: %s %q without display name", where, k, raw)
				}
			}
			if strings.Contains(raw, "=?") {
				st.encodedNames++
			}
		}
		subj := h.Get("Subject")
		st.qWords += strings.Count(subj, "?q?")
		st.bWords += strings.Count(subj, "?b?")
		if ds, err := dec.DecodeHeader(subj); err != nil {
			t.Errorf("%s: Subject %q: %v", where, subj, err)
		} else if !isASCII(ds) {
			st.nonASCIISubjects++
		}
		if irt := h.Get("In-Reply-To"); irt != "" {
			st.replies++
			refs := strings.Fields(h.Get("References"))
			if len(refs) == 0 || refs[len(refs)-1] != irt {
				t.Errorf("%s: References %q does not end with In-Reply-To %s", where, refs, irt)
			}
			if _, ok := ids[irt]; !ok {
				t.Errorf("%s: In-Reply-To %s is not an earlier message", where, irt)
			}
		}

		// MIME structure.
		walkPart(t, where, h, pm.Body, &st)

		// Flags.
		if err := checkFlags(m.Flags); err != nil {
			t.Errorf("%s: %v", where, err)
		}
		draft := slices.Contains(m.Flags, `\Draft`)
		if draft != (m.Folder == "Drafts") {
			t.Errorf("%s: flags %v", where, m.Flags)
		}
		for _, f := range m.Flags {
			st.flags[f]++
		}
	}

	t.Logf("%d messages, %d bytes; folders %v", len(msgs), total, folders)
	t.Logf("%+v", st)
	if total < 500<<10 || total > 5<<20 {
		t.Errorf("total size %d, want a few MB", total)
	}
	for _, f := range DemoFolders {
		if folders[f] == 0 {
			t.Errorf("folder %s is empty", f)
		}
	}
	if len(folders) != len(DemoFolders) {
		t.Errorf("folders %v", folders)
	}
	for name, n := range map[string]int{
		"encoded display names":     st.encodedNames,
		"Q encoded subject words":   st.qWords,
		"B encoded subject words":   st.bWords,
		"non-ASCII subjects":        st.nonASCIISubjects,
		"multipart/alternative":     st.alternative,
		"multipart/mixed":           st.mixed,
		"message/rfc822":            st.rfc822,
		"base64 attachments":        st.attachments,
		"RFC 2231 file names":       st.rfc2231Names,
		"quoted-printable parts":    st.qpParts,
		"8bit parts":                st.eightBitParts,
		"format=flowed parts":       st.flowed,
		"replies":                   st.replies,
		`\Seen`:                     st.flags[`\Seen`],
		`\Answered`:                 st.flags[`\Answered`],
		`\Flagged`:                  st.flags[`\Flagged`],
		`\Draft`:                    st.flags[`\Draft`],
		"$Forwarded":                st.flags["$Forwarded"],
		"$Label1":                   st.flags["$Label1"],
		"$Label2":                   st.flags["$Label2"],
		"$MDNSent":                  st.flags["$MDNSent"],
		"unread messages (no Seen)": len(msgs) - st.flags[`\Seen`],
	} {
		if n == 0 {
			t.Errorf("no %s", name)
		}
	}
	if st.flags[`\Deleted`] != 0 {
		t.Error(`\Deleted is set`)
	}
	if st.minAtt < 2<<10 || st.maxAtt > 210<<10 || st.maxAtt < 60<<10 {
		t.Errorf("attachment sizes %d..%d", st.minAtt, st.maxAtt)
	}
}

type partHeader interface {
	Get(string) string
}

// walkPart checks one MIME entity and its children and counts what it sees.
func walkPart(t *testing.T, where string, h partHeader, body io.Reader, st *stats) {
	t.Helper()
	ct := h.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		t.Fatalf("%s: Content-Type %q: %v", where, ct, err)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		if mt == "multipart/alternative" {
			st.alternative++
		} else {
			st.mixed++
		}
		mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", where, mt, err)
			}
			walkPart(t, where, p.Header, p, st)
			n++
		}
		if n < 2 {
			t.Errorf("%s: %s with %d parts", where, mt, n)
		}
		return
	case mt == "message/rfc822":
		st.rfc822++
		if _, err := mail.ReadMessage(bytes.NewReader(raw)); err != nil {
			t.Errorf("%s: message/rfc822: %v", where, err)
		}
		return
	}
	if params["format"] == "flowed" {
		st.flowed++
	}
	switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
	case "base64":
		data, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(raw), "\r\n", ""))
		if err != nil {
			t.Fatalf("%s: base64: %v", where, err)
		}
		st.attachments++
		st.minAtt = min(st.minAtt, len(data))
		st.maxAtt = max(st.maxAtt, len(data))
		cd := h.Get("Content-Disposition")
		if strings.Contains(cd, "filename*=") {
			st.rfc2231Names++
		}
		if _, p, err := mime.ParseMediaType(cd); err != nil || p["filename"] == "" {
			t.Errorf("%s: Content-Disposition %q: %v", where, cd, err)
		}
	case "quoted-printable":
		st.qpParts++
		if _, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(raw))); err != nil {
			t.Errorf("%s: quoted-printable: %v", where, err)
		}
	case "8bit":
		st.eightBitParts++
	case "7bit":
		if !isASCII(string(raw)) {
			t.Errorf("%s: 7bit part with 8-bit bytes", where)
		}
	default:
		t.Errorf("%s: Content-Transfer-Encoding %q", where, cte)
	}
}

func TestServerRoundTrip(t *testing.T) {
	src, dst := start(t), start(t)
	msgs := DemoMessages(1, 300)

	t0 := time.Now()
	if err := src.Add(msgs); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(t0)
	t.Logf("Add: %d messages in %v", len(msgs), elapsed)
	if elapsed > time.Second {
		t.Errorf("Add took %v", elapsed)
	}

	c := dial(t, src)
	caps := c.Caps()
	var capNames []string
	for cp := range caps {
		capNames = append(capNames, string(cp))
	}
	sort.Strings(capNames)
	t.Logf("capabilities after login: %v", capNames)
	for _, cp := range []imap.Cap{imap.CapIMAP4rev1, imap.CapUIDPlus, imap.CapMove, imap.CapNamespace} {
		if !caps.Has(cp) {
			t.Errorf("capability %s missing", cp)
		}
	}
	if caps.Has(imap.CapIMAP4rev2) || caps.Has(imap.CapSpecialUse) || caps.Has(imap.CapCondStore) {
		t.Errorf("advertises more than imapmemserver does: %v", capNames)
	}

	// LIST sees every folder and every parent, with "/".
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
		if l.Delim != '/' {
			t.Errorf("%s: delimiter %q", l.Mailbox, l.Delim)
		}
		// imapmemserver reports \Subscribed even in a plain LIST, and
		// nothing else: no \HasChildren, no \Noselect, no special use.
		if len(l.Attrs) != 1 || l.Attrs[0] != imap.MailboxAttrSubscribed {
			t.Errorf("%s: attributes %v", l.Mailbox, l.Attrs)
		}
	}
	if want := allFolders(); !reflect.DeepEqual(names, want) {
		t.Fatalf("LIST: got %q, want %q", names, want)
	}

	// FETCH returns exactly what was added, in append order.
	want := map[string][]Message{}
	for _, m := range msgs {
		want[m.Folder] = append(want[m.Folder], m)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	fetched := map[string][]*imapclient.FetchMessageBuffer{}
	for _, name := range names {
		sel, err := c.Select(name, nil).Wait()
		if err != nil {
			t.Fatalf("SELECT %s: %v", name, err)
		}
		w := want[name]
		if int(sel.NumMessages) != len(w) {
			t.Fatalf("%s: %d messages, want %d", name, sel.NumMessages, len(w))
		}
		if len(w) == 0 {
			continue
		}
		got, err := c.Fetch(all, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH %s: %v", name, err)
		}
		if len(got) != len(w) {
			t.Fatalf("%s: fetched %d, want %d", name, len(got), len(w))
		}
		for i, g := range got {
			body := g.FindBodySection(&imap.FetchItemBodySection{})
			if sum(body) != sum(w[i].Body) || g.RFC822Size != int64(len(w[i].Body)) {
				t.Errorf("%s #%d: body differs (%d bytes, want %d)", name, i+1, len(body), len(w[i].Body))
			}
			if !g.InternalDate.Equal(w[i].Date) {
				t.Errorf("%s #%d: INTERNALDATE %v, want %v", name, i+1, g.InternalDate, w[i].Date)
			}
			gf := make([]string, len(g.Flags))
			for j, f := range g.Flags {
				gf[j] = string(f)
			}
			sort.Strings(gf)
			if nf := NormalizeFlags(w[i].Flags); !slices.Equal(gf, nf) {
				t.Errorf("%s #%d: FLAGS %v, want %v (added as %v)", name, i+1, gf, nf, w[i].Flags)
			}
		}
		fetched[name] = got
	}

	// Dump agrees with what was added.
	srcDump, err := src.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if exp := expectedDump(msgs); !reflect.DeepEqual(srcDump, exp) {
		t.Fatalf("Dump differs from the added messages:\n got %v\nwant %v", srcDump, exp)
	}

	// A miniature migration over IMAP into dst, in reverse order within
	// each folder: Dump must not care about append order.
	d := dial(t, dst)
	for _, name := range names {
		if name != "INBOX" {
			if err := d.Create(name, nil).Wait(); err != nil {
				t.Fatalf("CREATE %s: %v", name, err)
			}
		}
		got := fetched[name]
		for i := len(got) - 1; i >= 0; i-- {
			g := got[i]
			body := g.FindBodySection(&imap.FetchItemBodySection{})
			cmd := d.Append(name, int64(len(body)), &imap.AppendOptions{Flags: g.Flags, Time: g.InternalDate})
			if _, err := cmd.Write(body); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			ad, err := cmd.Wait()
			if err != nil {
				t.Fatalf("APPEND %s: %v", name, err)
			}
			if ad.UID == 0 || ad.UIDValidity == 0 {
				t.Errorf("APPEND %s: no APPENDUID: %+v", name, ad)
			}
		}
	}
	dstDump, err := dst.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(srcDump, dstDump) {
		t.Fatal("source and destination dumps differ after the copy")
	}

	// Dump notices a flag change.
	if _, err := d.Select("Reisen/Zürich", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	var one imap.SeqSet
	one.AddNum(1)
	if err := d.Store(one, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{"$Label9"}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	dstDump, err = dst.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(srcDump, dstDump) {
		t.Fatal("Dump did not notice a STORE")
	}
}

// expectedDump is what Dump should return for a server holding msgs.
func expectedDump(msgs []Message) map[string][]DumpEntry {
	out := map[string][]DumpEntry{}
	for _, f := range allFolders() {
		out[f] = []DumpEntry{}
	}
	for _, m := range msgs {
		out[m.Folder] = append(out[m.Folder], DumpEntry{SHA256: sum(m.Body), Flags: NormalizeFlags(m.Flags), Date: m.Date})
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool {
			a, b := l[i], l[j]
			if !a.Date.Equal(b.Date) {
				return a.Date.Before(b.Date)
			}
			if a.SHA256 != b.SHA256 {
				return a.SHA256 < b.SHA256
			}
			return strings.Join(a.Flags, " ") < strings.Join(b.Flags, " ")
		})
	}
	return out
}

// TestKeywordCase pins down what imapmemserver does to flag case.
func TestKeywordCase(t *testing.T) {
	s := start(t)
	added := []string{`\seen`, `\FLAGGED`, "$Forwarded", "$Label1", "NonJunk", "$MDNSent"}
	date := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	if err := s.Add([]Message{{Folder: "inbox", Body: []byte("Subject: x\r\n\r\nx\r\n"), Flags: added, Date: date}}); err != nil {
		t.Fatal(err)
	}
	dump, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"$Forwarded", "$MDNSent", "$label1", `\Flagged`, `\Seen`, "nonjunk"}
	if got := dump["INBOX"]; len(got) != 1 || !slices.Equal(got[0].Flags, want) || !got[0].Date.Equal(date) {
		t.Fatalf("got %+v, want flags %v", got, want)
	}
	if got := NormalizeFlags(added); !slices.Equal(got, want) {
		t.Errorf("NormalizeFlags = %v, want %v", got, want)
	}
}

func TestAddFolders(t *testing.T) {
	s := start(t)
	msg := func(folder string) Message {
		return Message{Folder: folder, Body: []byte("Subject: " + folder + "\r\n\r\nhi\r\n")}
	}
	if err := s.Add([]Message{msg(""), msg("Inbox"), msg("INBOX/Sub"), msg("a/b/c"), msg("a/b/c"), msg("Ünïcødé/日本")}); err != nil {
		t.Fatal(err)
	}
	dump, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for k, v := range dump {
		got[k] = len(v)
	}
	want := map[string]int{"INBOX": 2, "INBOX/Sub": 1, "a": 0, "a/b": 0, "a/b/c": 2, "Ünïcødé": 0, "Ünïcødé/日本": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}

	for _, bad := range []Message{
		msg("/x"), msg("x/"), msg("a//b"), msg("a*"), msg("50%"),
		{Folder: "ok", Flags: []string{`\Recent`}},
		{Folder: "ok", Flags: []string{`\Important`}},
		{Folder: "ok", Flags: []string{"two words"}},
		{Folder: "ok", Flags: []string{""}},
	} {
		if err := s.Add([]Message{msg("ok"), bad}); err == nil {
			t.Errorf("Add(%q, %q) succeeded", bad.Folder, bad.Flags)
		}
	}
	dump, err = s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := dump["ok"]; ok {
		t.Error("a failed Add stored messages")
	}
}

func TestConcurrentAddAndRead(t *testing.T) {
	s := start(t)
	msgs := DemoMessages(3, 120)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Add(msgs[i*30 : (i+1)*30]); err != nil {
				t.Error(err)
			}
		}()
	}
	c := dial(t, s)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Dump(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	dump, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(dump, expectedDump(msgs)) {
		t.Error("Dump differs from the added messages")
	}
}

func TestCapsAndClose(t *testing.T) {
	s, err := StartWithCaps("u", "p", imap.CapSet{imap.CapIMAP4rev1: {}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("u", "wrong").Wait(); err == nil {
		t.Error("login with a wrong password succeeded")
	}
	if err := c.Login("u", "p").Wait(); err != nil {
		t.Fatal(err)
	}
	if caps := c.Caps(); caps.Has(imap.CapUIDPlus) || caps.Has(imap.CapMove) {
		t.Errorf("caps %v", caps)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := c.Noop().Wait(); err == nil {
		t.Error("connection still open after Close")
	}
	if c2, err := imapclient.DialInsecure(s.Addr, nil); err == nil {
		c2.Close()
		t.Error("still accepting connections after Close")
	}
	if _, err := StartWithCaps("u", "p", imap.CapSet{imap.CapMove: {}}); err == nil {
		t.Error("StartWithCaps without IMAP4rev1 or IMAP4rev2 succeeded")
	}
}
