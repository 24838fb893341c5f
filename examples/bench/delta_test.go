package bench

// The cutover jobs of BenchmarkPeers (MAILFERRY_BENCH_JOBS delta,watch):
// the delta pass a provider migration runs again and again, and --watch's
// latency from a delivery at the source to the message at the destination.

import (
	"bufio"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate/dovecottest"
)

// The delta job's rows.
const (
	bpJobDeltaNoop = "delta: no-op rerun (no --sync-deletions)"
	bpJobDelta0    = "delta: 0 changes"
	bpJobDelta1F   = "delta: 1 folder re-flagged"
	bpJobDelta     = "delta: 1% re-flagged, 0.5% deleted"
	bpWatchDeliver = 50 // deliveries the watch latency is the median of
)

// runDelta times, per tool and round, on a fresh copy of set's source
// synced once (untimed): a rerun with nothing changed (mailferry also
// without --sync-deletions, today's no-op rerun), then the pass after 1 %
// of the messages had their flags changed and 0.5 % were expunged at the
// source. Both tools carry flags and deletions (interimap always does,
// mailferry with --sync-deletions); a run counts when the destination then
// holds the source's message count and \Flagged count in every folder.
func (e *bpEnv) runDelta(set *bpSet) {
	tools := []string{bpMailferry, bpInterimap}
	for round := 0; round < e.rounds; round++ {
		for k := range tools {
			tool := tools[(k+round)%len(tools)]
			if !e.have(tool) {
				e.logf("delta: skipping %s: %s", tool, e.peers[tool])
				continue
			}
			e.deltaRound(set, tool, round)
		}
	}
}

// deltaRound is one tool's round of the delta job.
func (e *bpEnv) deltaRound(set *bpSet, tool string, round int) {
	d := e.deltaSetup(set, tool)
	defer d.stop()
	if tool == bpMailferry {
		noop := slices.DeleteFunc(slices.Clone(d.argv), func(a string) bool { return a == "--sync-deletions" })
		e.timed(bpKey{bpJobDeltaNoop, set.name, tool}, d.run(noop), set, round)
	}
	e.timed(bpKey{bpJobDelta0, set.name, tool}, d.run(d.argv), set, round)
	one := oneFolder(set)
	if e.oneFolderShare == nil {
		e.oneFolderShare = map[string]float64{}
	}
	e.oneFolderShare[set.name] = float64(set.counts[one]) / float64(set.total())
	flagged, deleted := e.changeSource(d.src, set, []string{one})
	e.logf("delta %s: changed the flags of %d messages and expunged %d in %s alone (%d messages, %.1f%% of the set)",
		tool, flagged, deleted, one, set.counts[one], 100*e.oneFolderShare[set.name])
	e.timed(bpKey{bpJobDelta1F, set.name, tool}, d.run(d.argv), set, round)
	flagged, deleted = e.changeSource(d.src, set, set.folders)
	e.logf("delta %s: changed the flags of %d messages and expunged %d at the source", tool, flagged, deleted)
	e.timed(bpKey{bpJobDelta, set.name, tool}, d.run(d.argv), set, round)
}

// oneFolder is the folder the delta job changes alone (a pass touching one
// folder should cost in proportion to it): the one whose size is nearest
// the average folder's, as a share of the messages about one folder's
// share of the folders (1 of 12 in SMALL).
func oneFolder(set *bpSet) string {
	avg := float64(set.total()) / float64(len(set.folders))
	best := set.folders[0]
	for _, f := range set.folders {
		if math.Abs(float64(set.counts[f])-avg) < math.Abs(float64(set.counts[best])-avg) {
			best = f
		}
	}
	return best
}

// deltaSync is a source of its own synced once into a fresh destination,
// and the command that syncs it again.
type deltaSync struct {
	src, dst  *dovecottest.Server
	argv, env []string
	stop      func()
}

func (d *deltaSync) run(argv []string) *bpRun {
	return &bpRun{argv: argv, env: d.env, servers: []*dovecottest.Server{d.src, d.dst}, check: bpSameFlagged(d.src, d.dst)}
}

// deltaSetup seeds a copy of set's source and syncs it once with tool
// (untimed).
func (e *bpEnv) deltaSetup(set *bpSet, tool string) *deltaSync {
	c := *set
	e.seed(&c) // a source of its own: the changes are made to it
	src, dst := c.src, e.newDst()
	stopSrc, stopDst := e.stopKeeping(src), e.stopKeeping(dst)
	var argv, env []string
	if tool == bpInterimap {
		argv = e.interimapArgv(src, dst)
	} else {
		argv = []string{e.bin, "migrate", "imap://alice@" + src.IMAPAddr(), "imap://alice@" + dst.IMAPAddr(),
			"--src-tls", "none", "--dst-tls", "none", "--state-dir", e.dir("mailferry-state"), "--progress", "never", "--sync-deletions"}
		argv = append(argv, strings.Fields(os.Getenv("MAILFERRY_BENCH_ARGS"))...)
		env = []string{"MAILFERRY_SRC_PASSWORD=" + src.Users["alice"], "MAILFERRY_DST_PASSWORD=" + dst.Users["alice"]}
	}
	d := &deltaSync{src: src, dst: dst, argv: argv, env: env, stop: func() { stopDst(); stopSrc() }}
	first := d.run(argv)
	first.timeout = 15 * time.Minute
	if s := bpExec(first, filepath.Join(e.dir("delta-first-"+tool), "output.log")); s.err != nil {
		d.stop()
		e.b.Fatalf("delta %s: the first sync failed: %v", tool, s.err)
	}
	return d
}

// interimapArgv is interimap syncing src (its remote) into dst (its local),
// with a fresh configuration and database.
func (e *bpEnv) interimapArgv(src, dst *dovecottest.Server) []string {
	d := e.dir("interimap")
	conf := filepath.Join(d, "interimap.conf")
	e.writeSecret(conf, fmt.Sprintf(`database = %s

[local]
type = imap
host = 127.0.0.1
port = %d
STARTTLS = NO
username = alice
password = %s

[remote]
type = imap
host = 127.0.0.1
port = %d
STARTTLS = NO
username = alice
password = %s
compress = NO
`, filepath.Join(d, "interimap.db"), dst.IMAPPort, dst.Users["alice"], src.IMAPPort, src.Users["alice"]))
	return []string{"interimap", "--config=" + conf}
}

// changeSource toggles \Flagged on every 100th message of each of folders
// and expunges every 200th (another one): 1 % and 0.5 % of them.
func (e *bpEnv) changeSource(src *dovecottest.Server, set *bpSet, folders []string) (flagged, deleted int) {
	c := src.Client(e.b, "alice")
	defer c.Close()
	for _, f := range folders {
		if set.counts[f] == 0 {
			continue
		}
		if _, err := c.Select(f, nil).Wait(); err != nil {
			e.b.Fatal(err)
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			e.b.Fatal(err)
		}
		var on, off, del imap.UIDSet
		for i, u := range data.AllUIDs() {
			switch {
			case i%100 == 0 && i%200 == 0:
				on.AddNum(u)
				flagged++
			case i%100 == 0:
				off.AddNum(u)
				flagged++
			case i%200 == 50:
				del.AddNum(u)
				deleted++
			}
		}
		for _, s := range []struct {
			set   imap.UIDSet
			op    imap.StoreFlagsOp
			flags []imap.Flag
		}{{on, imap.StoreFlagsAdd, []imap.Flag{imap.FlagFlagged}}, {off, imap.StoreFlagsDel, []imap.Flag{imap.FlagSeen}},
			{del, imap.StoreFlagsAdd, []imap.Flag{imap.FlagDeleted}}} {
			if len(s.set) == 0 {
				continue
			}
			if err := c.Store(s.set, &imap.StoreFlags{Op: s.op, Silent: true, Flags: s.flags}, nil).Close(); err != nil {
				e.b.Fatal(err)
			}
		}
		if len(del) > 0 {
			if err := c.UIDExpunge(del).Close(); err != nil {
				e.b.Fatal(err)
			}
		}
	}
	return flagged, deleted
}

// bpSameFlagged checks that dst holds, in every folder, as many messages,
// as many \Flagged and as many \Seen as src.
func bpSameFlagged(src, dst *dovecottest.Server) func() error {
	count := func(s *dovecottest.Server) (map[string]int, error) {
		c, err := imapclient.DialInsecure(s.IMAPAddr(), nil)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		if err := c.Login("alice", s.Users["alice"]).Wait(); err != nil {
			return nil, err
		}
		out, err := bpStatusAll(c)
		if err != nil {
			return nil, err
		}
		for _, f := range slices.Collect(maps.Keys(out)) {
			if out[f] == 0 {
				continue
			}
			if _, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				return nil, err
			}
			for _, fl := range []imap.Flag{imap.FlagFlagged, imap.FlagSeen} {
				d, err := c.UIDSearch(&imap.SearchCriteria{Flag: []imap.Flag{fl}}, nil).Wait()
				if err != nil {
					return nil, err
				}
				out[f+" "+string(fl)] = len(d.AllUIDs())
			}
		}
		return out, nil
	}
	return func() error {
		want, err := count(src)
		if err != nil {
			return err
		}
		got, err := count(dst)
		if err != nil {
			return err
		}
		return bpSameCounts(got, want)
	}
}

// runWatch measures --watch: after a first pass over a fresh copy of set,
// 50 messages are delivered to the source's INBOX one at a time, each when
// the one before has arrived; the latency is from the end of the APPEND to
// the destination INBOX showing the message (polled every 10 ms).
func (e *bpEnv) runWatch(set *bpSet) {
	c := *set
	e.seed(&c)
	src, dst := c.src, e.newDst()
	defer e.stopKeeping(src)()
	defer e.stopKeeping(dst)()
	logPath := filepath.Join(e.dir("watch"), "output.log")
	logf, err := os.Create(logPath)
	if err != nil {
		e.b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(e.bin, "migrate", "imap://alice@"+src.IMAPAddr(), "imap://alice@"+dst.IMAPAddr(),
		"--src-tls", "none", "--dst-tls", "none", "--state-dir", e.dir("watch-state"), "--progress", "never",
		"--sync-deletions", "--watch", "--interval", "30s")
	cmd.Env = append(bpBaseEnv(), "MAILFERRY_SRC_PASSWORD="+src.Users["alice"], "MAILFERRY_DST_PASSWORD="+dst.Users["alice"])
	out, err := cmd.StdoutPipe()
	if err != nil {
		e.b.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		e.b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	lines := bufio.NewScanner(out)
	for lines.Scan() { // the first pass's summary ends with its "copied" line
		fmt.Fprintln(logf, lines.Text())
		if strings.HasPrefix(lines.Text(), "copied ") {
			break
		}
	}
	go func() {
		for lines.Scan() {
			fmt.Fprintln(logf, lines.Text())
		}
	}()
	sc, dc := src.Client(e.b, "alice"), dst.Client(e.b, "alice")
	defer sc.Close()
	defer dc.Close()
	inbox := func() int {
		st, err := dc.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			e.b.Fatal(err)
		}
		return int(*st.NumMessages)
	}
	have := inbox()
	if have != set.counts["INBOX"] {
		e.b.Fatalf("watch: the first pass left %d messages in INBOX, want %d", have, set.counts["INBOX"])
	}
	time.Sleep(time.Second) // the watch is in IDLE now
	var lat []float64
	for i := range bpWatchDeliver {
		body := fmt.Sprintf("Message-ID: <watch-%d@bench.example>\r\nFrom: a@bench.example\r\nSubject: watch %d\r\n\r\nbody\r\n", i, i)
		ac := sc.Append("INBOX", int64(len(body)), nil)
		ac.Write([]byte(body))
		ac.Close()
		if _, err := ac.Wait(); err != nil {
			e.b.Fatal(err)
		}
		start := time.Now()
		have++
		for inbox() < have {
			if time.Since(start) > time.Minute {
				e.b.Fatalf("watch: delivery %d did not arrive within a minute\n%s", i+1, bpTail(logPath, 15))
			}
			time.Sleep(10 * time.Millisecond)
		}
		lat = append(lat, time.Since(start).Seconds())
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(lat)
	load, _ := os.ReadFile("/proc/loadavg")
	e.watchLine = fmt.Sprintf("--watch latency on %s (%d messages, IDLE at the source): median %.2f s, p90 %.2f s, max %.2f s over %d deliveries (target: median <= 2 s: %s); load %s",
		set.name, set.total(), bpMedian(lat), lat[len(lat)*9/10], lat[len(lat)-1], len(lat), map[bool]string{true: "MET", false: "NOT MET"}[bpMedian(lat) <= 2],
		strings.TrimSpace(string(load)))
	e.logf("%s", e.watchLine)
}
