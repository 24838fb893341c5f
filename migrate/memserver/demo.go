package memserver

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// DemoFolders are the folders DemoMessages fills, in display order. Add also
// creates the parents "Archive", "Work", "Work/Projects", "Lists" and
// "Reisen" as empty mailboxes.
var DemoFolders = []string{
	"INBOX",
	"Sent",
	"Drafts",
	"Trash",
	"Archive/2023",
	"Archive/2024",
	"Work/Projects/Apollo",
	"Work/Projects/Zephyr",
	"Lists/golang-nuts",
	"Reisen/Zürich",
}

// folder weights for DemoMessages, same order as DemoFolders.
var demoWeights = []int{30, 12, 3, 5, 12, 10, 8, 6, 10, 4}

// DemoMessages returns n realistic messages spread over DemoFolders, always
// the same bytes for the same seed and n. Messages are returned in order of
// their internal date, which lies in 2023–2024 (UTC, whole seconds); the
// Date header names the same instant in the sender's time zone.
//
// Every message has CRLF line endings, a unique Message-ID
// (<hex.i@demo.mailferry.invalid>), Date, From, To, Subject and
// MIME-Version. Display names and subjects include RFC 2047 encoded words
// (Q and B), bodies are plain text (7bit, 8bit or quoted-printable, some
// format=flowed, some with trailing spaces and tabs), multipart/alternative
// (text and HTML) or multipart/mixed with a base64 attachment of 2 KB to
// ~200 KB (one with an RFC 2231 non-ASCII file name) or a forwarded
// message/rfc822. Some messages are replies with In-Reply-To and References.
//
// Flags: \Seen, \Answered (set on messages that a later message in Sent
// answers), \Flagged, \Draft (only in Drafts) and the keywords $Forwarded,
// $MDNSent, $Label1 and $Label2. No \Deleted. Note that a Server stores
// keywords lowercased: compare with NormalizeFlags.
//
// With n=300 the messages total about 2.7 MB. When n >= len(DemoFolders) every
// folder gets at least one message.
func DemoMessages(seed int64, n int) []Message {
	if n <= 0 {
		return nil
	}
	g := &demoGen{rng: rand.New(rand.NewPCG(uint64(seed), 0x6d61696c66657272))}
	return g.run(n)
}

type person struct {
	name, addr string
	tz         int  // offset from UTC in minutes
	bEnc       bool // encode the display name with B rather than Q
}

var (
	me = person{"Kim Sommer", "kim.sommer@demo.mailferry.invalid", 60, false}

	friends = []person{
		{"Alice Johnson", "alice.johnson@example.com", -300, false},
		{"Bob Smith", "bob@example.org", -480, false},
		{"Jürgen Weiß", "juergen.weiss@firma.example", 60, false},
		{"Zoë Dubois", "zoe@atelier.example", 60, true},
		{"Łukasz Nowak", "lukasz.nowak@example.com", 60, false},
		{"José García", "jose.garcia@example.org", 60, true},
		{"山田 太郎", "yamada@example.com", 540, true},
		{"Ελένη Παπαδοπούλου", "eleni@example.net", 120, true},
		{"O'Neil, Dana", "dana.oneil@example.org", 0, false},
		{"Priya Raman", "priya@example.com", 330, false},
	}
	colleagues = []person{
		{"Maya Lindqvist", "maya.lindqvist@corp.example", 60, false},
		{"Tomás Ruiz", "tomas.ruiz@corp.example", 60, false},
		{"Carol Nguyen", "carol.nguyen@corp.example", -420, false},
		{"Søren Ødegård", "soren.odegard@corp.example", 60, true},
		{"Ravi Iyer", "ravi.iyer@corp.example", 330, false},
		{"Build Bot", "ci@corp.example", 0, false},
	}
	listPosters = []person{
		{"Dmitri Volkov", "dvolkov@example.net", 180, false},
		{"Gopher Gary", "gary@gophers.example", -300, false},
		{"Anaïs Martin", "anais.martin@example.fr.invalid", 60, false},
		{"Ken T.", "kent@example.com", -480, false},
		{"Wei Zhang (张伟)", "wei.zhang@example.com", 480, true},
		{"Emma Brown", "emma@example.org", 0, false},
	}
	travel = []person{
		{"Hotel am Limmatquai", "reservation@limmat-hotel.example", 60, false},
		{"SBB Ticketshop", "noreply@tickets.example", 60, false},
		{"Zürich Tourismus", "info@zuerich-tourismus.example", 60, false},
		{"Jürgen Weiß", "juergen.weiss@firma.example", 60, false},
		{"Zoë Dubois", "zoe@atelier.example", 60, true},
	}
	senders = []person{
		{"Nordic Design Weekly", "newsletter@nordic-design.example", 60, false},
		{"Bank of Example", "statements@bank.example", 0, false},
		{"Shop Example", "orders@shop.example", -300, false},
		{"Café Müller", "hallo@cafe-mueller.example", 60, false},
		{"GitHub Example", "notifications@git.example", 0, false},
	}
	golangNuts = person{"golang-nuts", "golang-nuts@lists.example.org", 0, false}
)

const (
	kindPlain = iota
	kindAlternative
	kindAttachment
	kindForward
)

type demoMsg struct {
	folder  string
	date    time.Time
	id      string
	refs    []string // References of this message, parent last
	subject string   // decoded, without "Re: "
	from    person
	to      []person
	cc      []person
	text    string // decoded plain text, "\n" line ends
	body    []byte
	fromMe  bool

	seen, answered, flagged, draft bool
	forwarded, mdnSent, lab1, lab2 bool
}

type demoGen struct {
	rng     *rand.Rand
	msgs    []*demoMsg
	project string // "{project}" in templates; random when ""
}

func (g *demoGen) intn(n int) int { return g.rng.IntN(n) }

func (g *demoGen) chance(p float64) bool { return g.rng.Float64() < p }

func pick[T any](g *demoGen, l []T) T { return l[g.rng.IntN(len(l))] }

func (g *demoGen) run(n int) []Message {
	start := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	days2023 := 365
	days := 366 + 365 // 2023 and 2024 (a leap year)

	// Phase 1: folder and date of every message.
	total := 0
	for _, w := range demoWeights {
		total += w
	}
	for i := 0; i < n; i++ {
		fi := 0
		if n >= len(DemoFolders) && i < len(DemoFolders) {
			fi = i // every folder at least once
		} else {
			r := g.intn(total)
			for r >= demoWeights[fi] {
				r -= demoWeights[fi]
				fi++
			}
		}
		folder := DemoFolders[fi]
		var day int
		switch folder {
		case "Archive/2023":
			day = g.intn(days2023)
		case "Archive/2024":
			day = days2023 + g.intn(days-days2023)
		default:
			day = g.intn(days)
		}
		t := start.AddDate(0, 0, day).Add(time.Duration(7+g.intn(16))*time.Hour +
			time.Duration(g.intn(60))*time.Minute + time.Duration(g.intn(60))*time.Second)
		g.msgs = append(g.msgs, &demoMsg{folder: folder, date: t})
	}
	sort.SliceStable(g.msgs, func(i, j int) bool { return g.msgs[i].date.Before(g.msgs[j].date) })

	// Phase 2: content, in chronological order so that replies and
	// forwards refer to earlier messages.
	for i, m := range g.msgs {
		m.id = fmt.Sprintf("<%016x.%d@demo.mailferry.invalid>", g.rng.Uint64(), i)
		g.compose(i, m)
	}

	out := make([]Message, n)
	for i, m := range g.msgs {
		out[i] = Message{Folder: m.folder, Body: m.body, Flags: m.flagList(), Date: m.date}
	}
	return out
}

func (m *demoMsg) flagList() []string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{m.seen, `\Seen`}, {m.answered, `\Answered`}, {m.flagged, `\Flagged`},
		{m.draft, `\Draft`}, {m.forwarded, "$Forwarded"}, {m.mdnSent, "$MDNSent"},
		{m.lab1, "$Label1"}, {m.lab2, "$Label2"},
	} {
		if x.on {
			f = append(f, x.name)
		}
	}
	return f
}

// findParent returns a recent earlier message matching ok, or nil.
func (g *demoGen) findParent(i int, ok func(*demoMsg) bool) *demoMsg {
	var c []*demoMsg
	for j := i - 1; j >= 0 && len(c) < 12; j-- {
		if ok(g.msgs[j]) {
			c = append(c, g.msgs[j])
		}
	}
	if len(c) == 0 {
		return nil
	}
	return pick(g, c)
}

func (g *demoGen) compose(i int, m *demoMsg) {
	var parent *demoMsg
	var sentences []string
	german := false
	kind := kindPlain
	switch r := g.intn(100); {
	case r < 55:
		kind = kindPlain
	case r < 78:
		kind = kindAlternative
	case r < 96:
		kind = kindAttachment
	default:
		kind = kindForward
	}
	var extra [][2]string // extra header fields, after MIME-Version
	g.project = ""
	if p, ok := strings.CutPrefix(m.folder, "Work/Projects/"); ok {
		g.project = p
	}

	// Who, what and flags, by folder.
	switch m.folder {
	case "Sent", "Drafts":
		m.from, m.fromMe = me, true
		m.to = []person{pick(g, friends)}
		if g.chance(0.3) {
			m.to = append(m.to, pick(g, append(friends[:len(friends):len(friends)], colleagues...)))
		}
		p := 0.45
		if m.folder == "Drafts" {
			p = 0.3
		}
		if g.chance(p) {
			parent = g.findParent(i, func(o *demoMsg) bool {
				return o.folder != "Trash" && o.from.addr != "ci@corp.example" &&
					(containsPerson(friends, o.from) || containsPerson(colleagues, o.from))
			})
		}
		if parent != nil {
			m.to = []person{parent.from}
			if m.folder == "Sent" {
				parent.answered = true
			}
		}
		sentences = generalSentences
		if m.folder == "Sent" {
			m.seen = true
		} else {
			m.draft = true
			m.seen = g.chance(0.5)
		}
		if g.chance(0.5) {
			extra = append(extra, [2]string{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0"})
		}
	case "Lists/golang-nuts":
		m.from = pick(g, listPosters)
		m.to = []person{golangNuts}
		if g.chance(0.4) {
			parent = g.findParent(i, func(o *demoMsg) bool { return o.folder == "Lists/golang-nuts" })
		}
		sentences = goSentences
		if kind == kindAttachment || kind == kindForward {
			kind = kindPlain // lists strip attachments
		}
		m.seen = g.chance(0.6)
		m.flagged = g.chance(0.04)
		extra = append(extra,
			[2]string{"List-Id", "<golang-nuts.lists.example.org>"},
			[2]string{"List-Unsubscribe", "<mailto:golang-nuts+unsubscribe@lists.example.org>"},
			[2]string{"Precedence", "list"})
	case "Work/Projects/Apollo", "Work/Projects/Zephyr":
		m.from = pick(g, colleagues)
		m.to = []person{me}
		if g.chance(0.5) {
			m.cc = []person{pick(g, colleagues)}
		}
		if g.chance(0.3) {
			parent = g.findParent(i, func(o *demoMsg) bool { return o.folder == m.folder })
		}
		if kind == kindPlain && g.chance(0.3) {
			kind = kindAttachment
		}
		sentences = workSentences
		m.seen = g.chance(0.85)
		m.flagged = g.chance(0.12)
		m.lab1 = g.chance(0.1)
		m.forwarded = g.chance(0.05)
	case "Reisen/Zürich":
		m.from = pick(g, travel)
		m.to = []person{me}
		german = true
		sentences = germanSentences
		m.seen = true
		m.flagged = g.chance(0.2)
		m.mdnSent = g.chance(0.15)
	default: // INBOX, Trash, Archive/2023, Archive/2024
		sentences = generalSentences
		if g.chance(0.3) {
			m.from = pick(g, senders)
			sentences = newsletterSentences
			if kind == kindPlain {
				kind = kindAlternative // newsletters and notifications
			}
		} else {
			m.from = pick(g, friends)
			if g.chance(0.3) {
				parent = g.findParent(i, func(o *demoMsg) bool { return o.fromMe && o.folder == "Sent" })
				if parent != nil {
					m.from = parent.to[0]
				}
			}
		}
		m.to = []person{me}
		switch {
		case m.folder == "INBOX":
			recent := m.date.After(time.Date(2024, 11, 1, 0, 0, 0, 0, time.UTC))
			m.seen = g.chance(0.75) && !(recent && g.chance(0.5))
			m.flagged = g.chance(0.08)
			m.lab1 = g.chance(0.05)
			m.lab2 = g.chance(0.04)
			m.forwarded = g.chance(0.04)
		case m.folder == "Trash":
			m.seen = g.chance(0.9)
		default: // Archive
			m.seen = true
			m.flagged = g.chance(0.05)
			m.answered = g.chance(0.1)
			m.lab1 = g.chance(0.1)
		}
	}
	if m.from.addr == "ci@corp.example" {
		parent = nil
	}
	if kind == kindForward && g.findParent(i, func(o *demoMsg) bool { return len(o.body) < 40<<10 }) == nil {
		kind = kindPlain
	}

	// Subject and threading.
	if parent != nil {
		m.subject = parent.subject
		m.refs = append(append([]string(nil), parent.refs...), parent.id)
		if len(m.refs) > 8 {
			m.refs = m.refs[len(m.refs)-8:]
		}
	} else {
		m.subject = g.subject(m)
	}
	subject := m.subject
	if parent != nil {
		if german && g.chance(0.5) {
			subject = "AW: " + subject
		} else {
			subject = "Re: " + subject
		}
	}
	var fwd *demoMsg
	if kind == kindForward {
		fwd = g.findParent(i, func(o *demoMsg) bool { return len(o.body) < 40<<10 })
		subject = "Fwd: " + fwd.subject
		if parent == nil {
			m.subject = fwd.subject
		}
	}

	// Plain text.
	var text strings.Builder
	if german {
		fmt.Fprintf(&text, "Hallo %s,\n\n", firstName(m.to[0]))
	} else if m.to[0].addr != golangNuts.addr {
		fmt.Fprintf(&text, "Hi %s,\n\n", firstName(m.to[0]))
	}
	paras := 1 + g.intn(4)
	if g.chance(0.1) {
		paras += 6 + g.intn(20) // the occasional long mail
	}
	for p := 0; p < paras; p++ {
		k := 1 + g.intn(min(5, len(sentences)))
		var para []string
		for _, j := range g.rng.Perm(len(sentences))[:k] {
			para = append(para, g.fill(sentences[j]))
		}
		text.WriteString(wrap(strings.Join(para, " "), 72))
		text.WriteString("\n\n")
		if m.folder == "Lists/golang-nuts" && p == 0 && g.chance(0.4) {
			text.WriteString(pick(g, goSnippets))
			text.WriteString("\n")
		}
	}
	if parent != nil {
		fmt.Fprintf(&text, "On %s, %s wrote:\n", parent.date.In(zone(parent.from)).Format("Mon, 2 Jan 2006 at 15:04"), parent.from.name)
		q := parent.text
		if len(q) > 600 {
			q = q[:strings.LastIndex(q[:600], "\n")+1]
		}
		for _, l := range strings.Split(strings.TrimRight(q, "\n"), "\n") {
			if l == "" {
				text.WriteString(">\n")
			} else {
				text.WriteString("> " + l + "\n")
			}
		}
		text.WriteString("\n")
	}
	if fwd != nil {
		text.WriteString("See the forwarded message below.\n\n")
	}
	if m.fromMe {
		text.WriteString("-- \nKim Sommer\n") // signature separator with its trailing space
	} else if german {
		text.WriteString("Freundliche Grüsse\n" + m.from.name + "\n")
	} else if containsPerson(senders, m.from) {
		text.WriteString("Your " + m.from.name + " team\n")
	} else {
		text.WriteString("Best,\n" + firstName(m.from) + "\n")
	}
	if m.folder == "Lists/golang-nuts" {
		text.WriteString("\n-- \nYou received this message because you are subscribed to the golang-nuts list.\n")
	}
	m.text = text.String()

	// Header.
	var b bytes.Buffer
	if !m.fromMe {
		ip := fmt.Sprintf("192.0.2.%d", 1+g.intn(254))
		host := m.from.addr[strings.IndexByte(m.from.addr, '@')+1:]
		writeRaw(&b, "Received", fmt.Sprintf("from mail.%s (mail.%s [%s])\r\n\tby mx.demo.mailferry.invalid with ESMTPS id %08X\r\n\tfor <%s>; %s",
			host, host, ip, g.rng.Uint32(), me.addr, m.date.Format(time.RFC1123Z)))
	}
	writeField(&b, "Date", m.date.In(zone(m.from)).Format(time.RFC1123Z))
	writeField(&b, "From", formatAddr(m.from))
	writeField(&b, "To", formatAddrs(m.to))
	if len(m.cc) > 0 {
		writeField(&b, "Cc", formatAddrs(m.cc))
	}
	writeField(&b, "Subject", g.encodeText(subject))
	writeField(&b, "Message-ID", m.id)
	if parent != nil {
		writeField(&b, "In-Reply-To", parent.id)
		writeField(&b, "References", strings.Join(m.refs, " "))
	}
	writeField(&b, "MIME-Version", "1.0")
	for _, f := range extra {
		writeField(&b, f[0], f[1])
	}

	// Body.
	switch kind {
	case kindPlain:
		g.writeText(&b, m.text)
	case kindAlternative:
		boundary := g.boundary()
		writeField(&b, "Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
		b.WriteString("\r\n")
		g.writeAlternative(&b, boundary, subject, m.text)
	case kindAttachment, kindForward:
		boundary := g.boundary()
		writeField(&b, "Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
		b.WriteString("\r\nThis is a multi-part message in MIME format.\r\n")
		b.WriteString("--" + boundary + "\r\n")
		if g.chance(0.4) {
			inner := g.boundary()
			writeField(&b, "Content-Type", `multipart/alternative; boundary="`+inner+`"`)
			b.WriteString("\r\n")
			g.writeAlternative(&b, inner, subject, m.text)
		} else {
			g.writeText(&b, m.text)
		}
		b.WriteString("\r\n--" + boundary + "\r\n")
		if fwd != nil {
			writeField(&b, "Content-Type", "message/rfc822")
			writeField(&b, "Content-Disposition", `attachment; filename="forwarded message.eml"`)
			b.WriteString("\r\n")
			b.Write(fwd.body)
			if m.folder == "Sent" && !fwd.fromMe {
				fwd.forwarded = true
			}
		} else {
			g.writeAttachment(&b, m.folder, german)
		}
		b.WriteString("\r\n--" + boundary + "--\r\n")
	}
	m.body = b.Bytes()
}

// firstName is how a greeting addresses p.
func firstName(p person) string {
	if _, after, ok := strings.Cut(p.name, ", "); ok {
		return after // "O'Neil, Dana"
	}
	return strings.Fields(p.name)[0]
}

func zone(p person) *time.Location {
	return time.FixedZone("", p.tz*60)
}

func (g *demoGen) boundary() string {
	return fmt.Sprintf("=_mf_%016x", g.rng.Uint64())
}

// writeText writes the header fields and body of a text/plain part.
func (g *demoGen) writeText(b *bytes.Buffer, text string) {
	ascii := isASCII(text)
	flowed := ascii && g.chance(0.2)
	ct := "text/plain; charset=utf-8"
	if ascii && g.chance(0.5) {
		ct = "text/plain; charset=us-ascii"
	}
	if flowed {
		ct += "; format=flowed"
		text = flow(text)
	}
	switch {
	case ascii:
		writeField(b, "Content-Type", ct)
		writeField(b, "Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(crlf(text))
	case g.chance(0.5):
		writeField(b, "Content-Type", ct)
		writeField(b, "Content-Transfer-Encoding", "8bit")
		b.WriteString("\r\n")
		b.WriteString(crlf(text))
	default:
		writeField(b, "Content-Type", ct)
		writeField(b, "Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		writeQP(b, text)
	}
}

// writeAlternative writes the parts of a multipart/alternative body.
func (g *demoGen) writeAlternative(b *bytes.Buffer, boundary, subject, text string) {
	b.WriteString("--" + boundary + "\r\n")
	g.writeText(b, text)
	b.WriteString("\r\n--" + boundary + "\r\n")
	writeField(b, "Content-Type", "text/html; charset=utf-8")
	writeField(b, "Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	writeQP(b, toHTML(subject, text))
	b.WriteString("\r\n--" + boundary + "--\r\n")
}

var attachmentKinds = []struct {
	ctype, name, magic string
}{
	{"application/pdf", "report.pdf", "%PDF-1.5\n%\xe2\xe3\xcf\xd3\n"},
	{"image/png", "screenshot.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"},
	{"image/jpeg", "IMG_2041.jpg", "\xff\xd8\xff\xe0\x00\x10JFIF\x00"},
	{"application/zip", "logs.zip", "PK\x03\x04\x14\x00\x00\x00\x08\x00"},
	{"text/csv; charset=utf-8", "figures.csv", ""},
	{"text/calendar; charset=utf-8; method=REQUEST", "invite.ics", ""},
}

func (g *demoGen) writeAttachment(b *bytes.Buffer, folder string, german bool) {
	k := pick(g, attachmentKinds)
	name := k.name
	if german {
		k = attachmentKinds[0]
		name = pick(g, []string{"Reiseplan Zürich.pdf", "Buchungsbestätigung.pdf", "Rechnung März.pdf"})
	} else if strings.HasPrefix(folder, "Work/") && k.ctype == "application/pdf" {
		name = strings.ToLower(strings.TrimPrefix(folder, "Work/Projects/")) + "-design-v" + fmt.Sprint(1+g.intn(4)) + ".pdf"
	}

	// Mostly small, sometimes medium, rarely large.
	var size int
	switch r := g.intn(100); {
	case r < 70:
		size = 2<<10 + g.intn(18<<10)
	case r < 95:
		size = 20<<10 + g.intn(60<<10)
	default:
		size = 80<<10 + g.intn(120<<10)
	}
	var data []byte
	switch {
	case strings.HasPrefix(k.ctype, "text/csv"):
		data = g.csv(size)
	case strings.HasPrefix(k.ctype, "text/calendar"):
		data = g.ics(min(size, 8<<10))
	default:
		data = make([]byte, size)
		for i := 0; i < size; i += 8 {
			v := g.rng.Uint64()
			for j := 0; j < 8 && i+j < size; j++ {
				data[i+j] = byte(v >> (8 * j))
			}
		}
		copy(data, k.magic)
	}

	ct, _, _ := strings.Cut(k.ctype, ";")
	params := map[string]string{"name": name}
	if rest, ok := strings.CutPrefix(k.ctype, ct+";"); ok {
		for _, p := range strings.Split(rest, ";") {
			kv := strings.SplitN(strings.TrimSpace(p), "=", 2)
			params[kv[0]] = kv[1]
		}
	}
	writeField(b, "Content-Type", mime.FormatMediaType(ct, params))
	writeField(b, "Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	writeField(b, "Content-Transfer-Encoding", "base64")
	b.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
}

func (g *demoGen) csv(size int) []byte {
	var b bytes.Buffer
	b.WriteString("date,region,product,units,revenue_eur\r\n")
	regions := []string{"Nord", "Süd", "Zürich", "Île-de-France", "Kraków"}
	products := []string{"widget", "gadget", "sprocket", "doohickey"}
	for d := 0; b.Len() < size; d++ {
		fmt.Fprintf(&b, "2024-%02d-%02d,%s,%s,%d,%d.%02d\r\n", 1+d/28%12, 1+d%28,
			pick(g, regions), pick(g, products), g.intn(500), g.intn(20000), g.intn(100))
	}
	return b.Bytes()
}

// ics returns an invitation with an agenda of about size bytes.
func (g *demoGen) ics(size int) []byte {
	t := time.Date(2024, time.Month(1+g.intn(12)), 1+g.intn(28), 9+g.intn(8), 0, 0, 0, time.UTC)
	var agenda []string
	for n := 0; n < size; {
		item := fmt.Sprintf("%d. %s", len(agenda)+1, g.fill(pick(g, workSentences)))
		agenda = append(agenda, item)
		n += len(item) + 2
	}
	// iCalendar escapes TEXT values and folds lines at 75 octets, with CRLF
	// and a space, between UTF-8 sequences.
	esc := strings.NewReplacer(`\`, `\\`, ";", `\;`, ",", `\,`)
	desc := `DESCRIPTION:Agenda:\n` + esc.Replace(strings.Join(agenda, "\n"))
	desc = strings.ReplaceAll(desc, "\n", `\n`)
	var folded []string
	for len(desc) > 74 {
		k := 74
		for !utf8.RuneStart(desc[k]) {
			k--
		}
		folded = append(folded, desc[:k])
		desc = " " + desc[k:]
	}
	folded = append(folded, desc)
	return []byte(crlf(fmt.Sprintf(`BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//mailferry//demo//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:%016x@demo.mailferry.invalid
DTSTAMP:%s
DTSTART:%s
DTEND:%s
SUMMARY:Project sync
LOCATION:Room 4.12
%s
END:VEVENT
END:VCALENDAR
`, g.rng.Uint64(), t.Format("20060102T150405Z"), t.Format("20060102T150405Z"), t.Add(time.Hour).Format("20060102T150405Z"),
		strings.Join(folded, "\n"))))
}

func (g *demoGen) subject(m *demoMsg) string {
	var l []string
	switch m.folder {
	case "Lists/golang-nuts":
		l = goSubjects
	case "Work/Projects/Apollo", "Work/Projects/Zephyr":
		l = workSubjects
	case "Reisen/Zürich":
		l = germanSubjects
	case "Drafts":
		l = draftSubjects
	default:
		if m.from.addr != "" && containsPerson(senders, m.from) {
			l = newsletterSubjects
		} else {
			l = generalSubjects
		}
	}
	return g.fill(pick(g, l))
}

func containsPerson(l []person, p person) bool {
	for _, q := range l {
		if q.addr == p.addr {
			return true
		}
	}
	return false
}

var fillDays = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}
var fillMonths = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}

// fill replaces the placeholders of a template sentence.
func (g *demoGen) fill(s string) string {
	if !strings.Contains(s, "{") {
		return s
	}
	project := g.project
	if project == "" {
		project = pick(g, []string{"Apollo", "Zephyr"})
	}
	r := strings.NewReplacer(
		"{day}", pick(g, fillDays),
		"{month}", pick(g, fillMonths),
		"{n2}", fmt.Sprint(5+g.intn(400)),
		"{n}", fmt.Sprint(2+g.intn(40)),
		"{hh}", fmt.Sprintf("%02d", 7+g.intn(14)),
		"{mm}", fmt.Sprintf("%02d", g.intn(12)*5),
		"{order}", fmt.Sprint(100000+g.intn(900000)),
		"{pr}", fmt.Sprint(100+g.intn(1900)),
		"{q}", fmt.Sprint(1+g.intn(4)),
		"{version}", fmt.Sprintf("%d.%d", 1+g.intn(3), g.intn(10)),
		"{gov}", fmt.Sprint(18+g.intn(5)),
		"{gothing}", pick(g, []string{"sync.Pool", "a generic Set type", "io.Pipe", "select with a nil channel", "unsafe.String", "slices.SortFunc", "a ticker in a loop", "http.Server shutdown"}),
		"{gofile}", pick(g, []string{"cache.go", "server_test.go", "pool.go", "handler.go"}),
		"{goproj}", pick(g, []string{"fastcsv", "gomigrate", "tinyrpc", "boltview"}),
		"{year}", fmt.Sprint(2023+g.intn(2)),
		"{project}", project,
	)
	return r.Replace(s)
}

// encodeText encodes a header text as RFC 2047 encoded words when it is not
// ASCII, in Q or B encoding.
func (g *demoGen) encodeText(s string) string {
	if isASCII(s) {
		return s
	}
	if g.chance(0.5) {
		return mime.BEncoding.Encode("UTF-8", s)
	}
	return mime.QEncoding.Encode("UTF-8", s)
}

func formatAddr(p person) string {
	name := p.name
	switch {
	case !isASCII(name):
		if p.bEnc {
			name = mime.BEncoding.Encode("UTF-8", name)
		} else {
			name = mime.QEncoding.Encode("UTF-8", name)
		}
	case strings.ContainsAny(name, `()<>[]:;@\,."`):
		name = `"` + strings.ReplaceAll(name, `"`, `\"`) + `"`
	}
	return name + " <" + p.addr + ">"
}

func formatAddrs(l []person) string {
	s := make([]string, len(l))
	for i, p := range l {
		s[i] = formatAddr(p)
	}
	return strings.Join(s, ", ")
}

// writeField writes a header field, folding it at spaces to keep lines
// within 78 characters where possible.
func writeField(b *bytes.Buffer, name, value string) {
	line := name + ":"
	for i, w := range strings.Split(value, " ") {
		if i > 0 && len(line)+1+len(w) > 78 {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + w
	}
	b.WriteString(line + "\r\n")
}

// writeRaw writes a header field that is already folded with CRLF.
func writeRaw(b *bytes.Buffer, name, value string) {
	b.WriteString(name + ": " + value + "\r\n")
}

func writeQP(b *bytes.Buffer, text string) {
	w := quotedprintable.NewWriter(b)
	_, _ = w.Write([]byte(text)) // bytes.Buffer does not fail
	_ = w.Close()
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
}

func crlf(s string) string {
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// wrap breaks a paragraph into lines of at most width characters.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		l := utf8.RuneCountInString(w)
		if i > 0 {
			if n+1+l > width {
				b.WriteString("\n")
				n = 0
			} else {
				b.WriteString(" ")
				n++
			}
		}
		b.WriteString(w)
		n += l
	}
	return b.String()
}

// flow turns wrapped paragraphs into format=flowed: soft line breaks keep a
// trailing space.
func flow(text string) string {
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines)-1; i++ {
		l, next := lines[i], lines[i+1]
		if l != "" && next != "" && l != "-- " && !strings.HasPrefix(l, ">") &&
			!strings.HasPrefix(l, "\t") && !strings.HasPrefix(next, "\t") && len(l) > 40 {
			lines[i] = l + " "
		}
	}
	return strings.Join(lines, "\n")
}

func toHTML(subject, text string) string {
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>" + esc.Replace(subject) + "</title>\n</head>\n")
	b.WriteString("<body style=\"font-family: Helvetica, Arial, sans-serif; font-size: 14px; color: #222222;\">\n")
	for _, p := range strings.Split(strings.TrimRight(text, "\n"), "\n\n") {
		if strings.HasPrefix(p, "\t") {
			b.WriteString("<pre>" + esc.Replace(p) + "</pre>\n")
			continue
		}
		b.WriteString("<p>" + strings.ReplaceAll(esc.Replace(p), "\n", "<br>\n") + "</p>\n")
	}
	b.WriteString("</body>\n</html>\n")
	return b.String()
}

var generalSentences = []string{
	"Thanks for sending this over so quickly.",
	"I had a look at the numbers and they mostly add up.",
	"Could we move the call to {day} afternoon?",
	"The invoice for {month} is in the portal, nothing to do on your side.",
	"Let me know if anything is unclear.",
	"I'll be out of the office until {day}.",
	"Sorry for the late reply, this week has been hectic.",
	"We should book the venue before the end of {month}.",
	"Here is the summary we discussed: {n} open items, two of them blocking.",
	"The photos from the weekend are finally sorted.",
	"Did you get a chance to read the draft?",
	"Happy to help with the move on {day}.",
	"The package was left with the neighbour at number {n}.",
	"I think the second option is cheaper in the long run.",
	"No rush on this one.",
	"My flight lands at {hh}:{mm}, so dinner at eight should work.",
	"Your order #{order} has shipped and should arrive within {n} days.",
	"Please confirm your address before {day}.",
	"The kids loved the museum, thanks again for the tip.",
	"We tried the new café next to the station – the croissants are très bien.",
	"Grandma says hello and asks when you are visiting.",
	"The landlord finally fixed the heating.",
	"Can you bring the projector on {day}?",
	"I've renewed the insurance; the premium went up by {n} percent.",
	"Let's split the bill, I'll send you my half tonight.",
}

var newsletterSentences = []string{
	"This week we look at {n} new projects worth your attention.",
	"Your statement for {month} is now available in online banking.",
	"Use the code SPRING{n} at checkout to get 20% off.",
	"Track your parcel with the link in your account.",
	"You are receiving this email because you subscribed on our website.",
	"Our opening hours change from {day} onwards.",
	"New in the shop: handmade ceramics from Porto.",
	"Read the full story on our blog.",
	"{n} people commented on your pull request.",
	"Your payment of {n2}.00 EUR was received, thank you.",
	"Unser Mittagsmenü wechselt jeden {day} – schauen Sie vorbei!",
}

var workSentences = []string{
	"The {project} build is green again after the dependency bump.",
	"We need a decision on the storage layout before the {day} review.",
	"Latency on the staging cluster went from {n} ms to {n2} ms after the change.",
	"I pushed a fix for the flaky integration test, please take a look.",
	"The customer asked whether {project} can export to CSV.",
	"Milestone {n} slipped by a week; the new date is in the tracker.",
	"Can you own the migration runbook for {project}?",
	"Budget for Q{q} is approved, with a small cut on hardware.",
	"The design doc has comments from legal and security.",
	"Let's keep the scope of {project} {version} small and ship it.",
	"I benchmarked both approaches; the batched one is about {n}% faster.",
	"Retro notes: fewer meetings, more pairing, better on-call handover.",
	"The vendor confirmed the API rate limit is {n2} requests per minute.",
	"Please review PR #{pr} before the freeze on {day}.",
	"Søren will cover on-call next week while I'm at the conference.",
	"The dashboards now show p99 latency per region.",
	"We agreed to deprecate the v1 endpoints by the end of {month}.",
}

var goSentences = []string{
	"Is there a way to do this with {gothing} without an extra allocation?",
	"You can use a buffered channel here, but a sync.WaitGroup is simpler.",
	"The race detector reports a data race on the map in {gofile}.",
	"Since Go 1.22 the loop variable is per-iteration, so the closure is fine.",
	"Have you profiled it with pprof? The hot path is probably in encoding/json.",
	"Generics would help, but an interface with two methods is enough here.",
	"errors.Is walks the chain, so wrap with %w instead of %v.",
	"context.WithTimeout returns a cancel func; always defer it.",
	"I'd avoid init() for this and pass the config explicitly.",
	"The io.Reader contract allows n > 0 together with err == io.EOF.",
	"Benchmarks: {n2} ns/op before, {n} ns/op after.",
	"A minimal reproducer on the playground would help a lot.",
	"The module proxy caches versions forever, so retagging won't work.",
	"I have been bitten by {gothing} on Go 1.{gov} as well.",
	"Closing a channel twice panics, so let exactly one goroutine own it.",
}

var goSnippets = []string{
	"\tfunc worker(ctx context.Context, jobs <-chan Job) error {\n\t\tfor {\n\t\t\tselect {\n\t\t\tcase <-ctx.Done():\n\t\t\t\treturn ctx.Err()\n\t\t\tcase j := <-jobs:\n\t\t\t\tj.Run()\n\t\t\t}\n\t\t}\n\t}\n",
	"\tvar mu sync.Mutex\n\tm := map[string]int{}\n\tfor i := range 10 {\n\t\tgo func() {\n\t\t\tmu.Lock()\n\t\t\tm[fmt.Sprint(i)]++\n\t\t\tmu.Unlock()\n\t\t}()\n\t}\n",
	"\t$ go test -race -run TestCache ./...\n\tWARNING: DATA RACE\n\tWrite at 0x00c000124000 by goroutine 8:\n",
}

var germanSentences = []string{
	"Vielen Dank für Ihre Buchung im Hotel am Limmatquai.",
	"Ihr Zimmer ist ab {hh}:00 Uhr bezugsbereit.",
	"Die Fahrkarte gilt für alle Züge zwischen Basel und Zürich HB.",
	"Bitte beachten Sie, dass das Frühstück nicht im Preis inbegriffen ist.",
	"Wir freuen uns auf Ihren Besuch in Zürich.",
	"Die Führung durch die Altstadt beginnt um {hh}:30 Uhr am Grossmünster.",
	"Bei Fragen erreichen Sie uns rund um die Uhr.",
	"Der Seeblick kostet einen Aufpreis von {n} CHF pro Nacht.",
	"Könnten wir uns am Samstag am Bürkliplatz treffen?",
	"Das Wetter soll übers Wochenende schön werden, also Badesachen einpacken!",
	"Die Stornierung ist bis {n} Tage vor Anreise kostenlos.",
	"Grüße aus Zürich, es ist wunderschön hier.",
	"Auf dem Üetliberg hatten wir eine großartige Aussicht über den See.",
}

var generalSubjects = []string{
	"Weekend plans",
	"Photos from Sunday",
	"Dinner on {day}?",
	"Rescheduling our call",
	"Quick question",
	"Résumé for the open position",
	"Happy birthday! 🎉",
	"Moving day",
	"Library books due {day}",
	"Trip to Kraków – flights",
	"Re-roofing quote",
	"Brunch at Zoë's",
	"Tax documents {year}",
}

var newsletterSubjects = []string{
	"This week in open source",
	"Your monthly statement is ready",
	"Spring sale – 20% off everything",
	"Nordic Design Weekly №{n}",
	"Your order #{order} has shipped",
	"Café Müller — Ihre Reservierung ist bestätigt",
	"[git.example] {n} new notifications",
	"Invoice {month} {year}",
}

var workSubjects = []string{
	"[{project}] Weekly status",
	"[{project}] Storage layout decision",
	"[{project}] Release {version} checklist",
	"[{project}] Incident report",
	"{project}: budget Q{q}",
	"[{project}] Retro notes",
	"Review request: PR #{pr}",
	"[{project}] Kundenfeedback zur Übersicht",
	"[{project}] Build failed on main",
	"Offsite agenda – Malmö",
}

var goSubjects = []string{
	"question about {gothing}",
	"[ANN] {goproj} v{version} released",
	"data race in {gofile}",
	"generics and {gothing}",
	"proposal: {gothing} in the standard library",
	"How to structure a large module?",
	"Why is my goroutine leaking?",
	"errors.Is vs errors.As",
}

var germanSubjects = []string{
	"Buchungsbestätigung Hotel am Limmatquai",
	"Ihre Reservierung – Zürich HB → Luzern",
	"Stadtführung Zürich: Treffpunkt",
	"Fotos vom Üetliberg",
	"Zürich im Mai?",
	"Rechnung Nr. {order} – Zürichsee-Schifffahrt",
}

var draftSubjects = []string{
	"Notes for {day}",
	"Letter to the landlord",
	"Draft: {project} proposal",
	"Packing list",
	"Speech for Jürgen's farewell",
}
