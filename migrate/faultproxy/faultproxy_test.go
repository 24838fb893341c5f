package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a TCP server on 127.0.0.1:0 that runs handle for each
// connection. close stops it and waits for its handlers.
type testServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startServer(t *testing.T, handle func(net.Conn)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(20 * time.Second))
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// echo sends back what it reads, and half-closes at EOF.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

// sender writes data and closes.
func sender(data []byte) func(net.Conn) {
	return func(c net.Conn) { c.Write(data) }
}

// sink reads until EOF or error and reports how many bytes came.
func sink(got chan<- int64) func(net.Conn) {
	return func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}
}

func newProxy(t *testing.T, target string, f Faults) *Proxy {
	t.Helper()
	p, err := New(target, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(15 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readAll reads until EOF or an error (a reset counts as the end too) and
// returns what came.
func readAll(c net.Conn) []byte {
	var buf bytes.Buffer
	io.Copy(&buf, c)
	return buf.Bytes()
}

func TestProxyForwardsBothWaysAndHalfClose(t *testing.T) {
	srv := startServer(t, echo)
	p := newProxy(t, srv.addr(), Faults{Seed: 1})
	c := dial(t, p.Addr())
	data := randomBytes(1, 1<<20)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got := readAll(c)
	if !bytes.Equal(got, data) {
		t.Fatalf("echoed %d bytes, want the %d sent", len(got), len(data))
	}
	if conns, cuts := p.Stats(); conns != 1 || cuts != 0 {
		t.Errorf("Stats = %d connections, %d cuts; want 1, 0", conns, cuts)
	}
	if up, down := p.Traffic(); up != int64(len(data)) || down != int64(len(data)) {
		t.Errorf("Traffic = %d up, %d down; want %d each", up, down, len(data))
	}
}

func TestProxyCutClientToServerIsExact(t *testing.T) {
	got := make(chan int64, 1)
	srv := startServer(t, sink(got))
	p := newProxy(t, srv.addr(), Faults{CutAfterBytes: Cut{Min: 1000, Max: 1000, P: 1, Dir: ClientToServer}})
	c := dial(t, p.Addr())
	go c.Write(randomBytes(2, 100_000))
	select {
	case n := <-got:
		if n != 1000 {
			t.Errorf("the server received %d bytes, want exactly 1000", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the connection end")
	}
	// The client sees its side closed too.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("the client's connection is still open after the cut")
	}
	if _, cuts := p.Stats(); cuts != 1 {
		t.Errorf("Stats cuts = %d, want 1", cuts)
	}
	ev := p.Events()
	if len(ev) != 1 || ev[0].Kind != "cut" || ev[0].At != 1000 || ev[0].Dir != ClientToServer || len(ev[0].Tail) != tailLen {
		t.Errorf("events = %v", ev)
	}
}

func TestProxyCutServerToClientIsExact(t *testing.T) {
	data := randomBytes(3, 200_000)
	srv := startServer(t, sender(data))
	p := newProxy(t, srv.addr(), Faults{CutAfterBytes: Cut{Min: 12345, Max: 12345, P: 1, Dir: ServerToClient}})
	got := readAll(dial(t, p.Addr()))
	if len(got) != 12345 || !bytes.Equal(got, data[:12345]) {
		t.Errorf("the client got %d bytes, want exactly the first 12345", len(got))
	}
	if ev := p.Events(); len(ev) != 1 || !bytes.Equal(ev[0].Tail, data[12345-tailLen:12345]) {
		t.Errorf("events = %v; want one cut whose tail is the last bytes sent", ev)
	}
}

// cutLengths runs n connections one after another against a server that
// sends 10 000 bytes, and returns how many bytes each delivered.
func cutLengths(t *testing.T, f Faults, n int) ([]int, *Proxy) {
	t.Helper()
	srv := startServer(t, sender(randomBytes(4, 10_000)))
	p := newProxy(t, srv.addr(), f)
	var out []int
	for i := 0; i < n; i++ {
		c := dial(t, p.Addr())
		out = append(out, len(readAll(c)))
		c.Close()
	}
	return out, p
}

func TestProxyCutIsRandomInRangeAndSeeded(t *testing.T) {
	f := Faults{Seed: 42, CutAfterBytes: Cut{Min: 100, Max: 5000, P: 1, Dir: Both}}
	a, _ := cutLengths(t, f, 8)
	b, _ := cutLengths(t, f, 8)
	f.Seed = 43
	c, _ := cutLengths(t, f, 8)
	for _, n := range a {
		if n < 100 || n > 5000 {
			t.Errorf("a cut after %d bytes, outside [100, 5000]: %v", n, a)
		}
	}
	if !slices.Equal(a, b) {
		t.Errorf("the same seed gave %v and %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Errorf("seeds 42 and 43 gave the same cuts %v", a)
	}
	if slices.Min(a) == slices.Max(a) {
		t.Errorf("all cuts at the same byte count: %v", a)
	}
}

func TestProxyCutBudgetAndFirstConns(t *testing.T) {
	got, p := cutLengths(t, Faults{CutAfterBytes: Cut{Min: 10, Max: 10, P: 1, MaxCuts: 2}}, 5)
	if want := []int{10, 10, 10_000, 10_000, 10_000}; !slices.Equal(got, want) {
		t.Errorf("MaxCuts 2: delivered %v, want %v", got, want)
	}
	if conns, cuts := p.Stats(); conns != 5 || cuts != 2 {
		t.Errorf("Stats = %d, %d; want 5, 2", conns, cuts)
	}
	got, _ = cutLengths(t, Faults{CutAfterBytes: Cut{Min: 10, Max: 10, P: 1, FirstConns: 1}}, 3)
	if want := []int{10, 10_000, 10_000}; !slices.Equal(got, want) {
		t.Errorf("FirstConns 1: delivered %v, want %v", got, want)
	}
}

func TestProxyCutProbability(t *testing.T) {
	got, p := cutLengths(t, Faults{Seed: 7, CutAfterBytes: Cut{Min: 10, Max: 10, P: 0.5}}, 30)
	_, cuts := p.Stats()
	if cuts < 5 || cuts > 25 {
		t.Errorf("P 0.5 cut %d of 30 connections: %v", cuts, got)
	}
	got, p = cutLengths(t, Faults{CutAfterBytes: Cut{Min: 10, Max: 10}}, 3)
	if _, cuts := p.Stats(); cuts != 0 {
		t.Errorf("P 0 cut %d connections: %v", cuts, got)
	}
}

func TestProxyLatencyDelaysButPipelines(t *testing.T) {
	srv := startServer(t, echo)
	const lat = 50 * time.Millisecond
	p := newProxy(t, srv.addr(), Faults{Latency: lat})
	c := dial(t, p.Addr())
	buf := make([]byte, 4)
	start := time.Now()
	c.Write([]byte("ping"))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*lat || rtt > 2*lat+time.Second {
		t.Errorf("round trip %v, want about %v", rtt, 2*lat)
	}
	// Ten writes 10 ms apart: delayed, not queued one latency after another.
	start = time.Now()
	go func() {
		for i := 0; i < 10; i++ {
			c.Write([]byte("pong"))
			time.Sleep(10 * time.Millisecond)
		}
	}()
	if _, err := io.ReadFull(c, make([]byte, 40)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*lat+90*time.Millisecond || d > 10*lat {
		t.Errorf("ten pipelined writes took %v, want about %v", d, 2*lat+90*time.Millisecond)
	}
}

// Many small writes through a delay: the chunks due together go out in one
// write (writeBatch), and every byte arrives once, in order, counted, and
// seen by the Tap in order.
func TestProxyLatencyManySmallWrites(t *testing.T) {
	data := randomBytes(7, 400_000)
	srv := startServer(t, func(c net.Conn) {
		r := rand.New(rand.NewPCG(8, 1))
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+r.IntN(300))
			if _, err := c.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	})
	var mu sync.Mutex
	var tapped bytes.Buffer
	p := newProxy(t, srv.addr(), Faults{Latency: 20 * time.Millisecond, Tap: func(_ int, dir Dir, b []byte) {
		if dir == ServerToClient {
			mu.Lock()
			tapped.Write(b)
			mu.Unlock()
		}
	}})
	got := readAll(dial(t, p.Addr()))
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d sent, in order", len(got), len(data))
	}
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(tapped.Bytes(), data) {
		t.Errorf("the Tap saw %d bytes, not the %d forwarded in order", tapped.Len(), len(data))
	}
	if _, down := p.Traffic(); down != int64(len(data)) {
		t.Errorf("Traffic counts %d bytes to the client, want %d", down, len(data))
	}
}

func TestProxyBytesPerSecond(t *testing.T) {
	data := randomBytes(5, 100_000)
	srv := startServer(t, sender(data))
	p := newProxy(t, srv.addr(), Faults{BytesPerSecond: 200_000})
	start := time.Now()
	got := readAll(dial(t, p.Addr()))
	d := time.Since(start)
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want the %d sent", len(got), len(data))
	}
	if d < 400*time.Millisecond || d > 5*time.Second {
		t.Errorf("100 kB at 200 kB/s took %v, want about 500ms", d)
	}
}

func TestProxyStallDelaysAndLosesNothing(t *testing.T) {
	data := randomBytes(6, 5000)
	srv := startServer(t, sender(data))
	const stall = 400 * time.Millisecond
	p := newProxy(t, srv.addr(), Faults{Stall: Stall{Min: 1000, Max: 1000, P: 1, For: stall, Dir: ServerToClient}})
	start := time.Now()
	got := readAll(dial(t, p.Addr()))
	if d := time.Since(start); d < stall {
		t.Errorf("took %v with a %v stall", d, stall)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("got %d bytes, want the %d sent", len(got), len(data))
	}
	if ev := p.Events(); len(ev) != 1 || ev[0].Kind != "stall" || ev[0].At != 1000 {
		t.Errorf("events = %v", ev)
	}
	if _, cuts := p.Stats(); cuts != 0 {
		t.Errorf("a stall counted as %d cuts", cuts)
	}
}

func TestProxyNewRejectsBadFaults(t *testing.T) {
	for _, f := range []Faults{
		{CutAfterBytes: Cut{Min: 10, Max: 5, P: 1}},
		{CutAfterBytes: Cut{Max: 5, P: 2}},
		{Stall: Stall{Min: -1, Max: 5, P: 1}},
		{Latency: -time.Second},
	} {
		if p, err := New("127.0.0.1:1", f); err == nil {
			p.Close()
			t.Errorf("New accepted %+v", f)
		}
	}
}

// goroutines waits up to 3 s for the number of goroutines to fall to want
// or below, and fails with every stack if it does not.
func checkGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), want, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProxyCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := startServer(t, echo)
	data := randomBytes(7, 1<<20)
	p, err := New(srv.addr(), Faults{
		Latency: 20 * time.Millisecond, BytesPerSecond: 1 << 20,
		Stall: Stall{Min: 50, Max: 50_000, P: 0.5, For: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	var clients []net.Conn
	var wg sync.WaitGroup
	readErrs := make(chan error, 6)
	for i := 0; i < 6; i++ {
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		clients = append(clients, c)
		wg.Add(2)
		go func() { defer wg.Done(); c.Write(data) }()
		go func() {
			defer wg.Done()
			_, err := io.Copy(io.Discard, c)
			readErrs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond) // traffic flows, some connections stall
	if conns, _ := p.Stats(); conns != 6 {
		t.Errorf("%d connections accepted, want 6", conns)
	}
	start := time.Now()
	p.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	// Every client sees its connection end, long before its deadline.
	for i := 0; i < 6; i++ {
		if err := <-readErrs; err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
			t.Errorf("a client's read ended with %v, want EOF or reset", err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the clients saw the end after %v", d)
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the proxy still accepts connections after Close")
	}
	p.Close() // twice is fine
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()
	srv.close()
	checkGoroutines(t, before)
}

func TestProxyNoGoroutinesLeftAfterUse(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := startServer(t, echo)
	p, err := New(srv.addr(), Faults{Seed: 9, CutAfterBytes: Cut{Min: 1, Max: 3000, P: 0.5}, Latency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		c := dial(t, p.Addr())
		go func() { c.Write(randomBytes(uint64(i), 4000)); c.(*net.TCPConn).CloseWrite() }()
		readAll(c)
		c.Close()
	}
	if conns, cuts := p.Stats(); conns != 20 || cuts == 0 || cuts == 20 {
		t.Errorf("Stats = %d connections, %d cuts", conns, cuts)
	}
	p.Close()
	srv.close()
	checkGoroutines(t, before)
}

func TestProxyCutBeforePattern(t *testing.T) {
	data := []byte("* OK ready\r\n* 3 EXISTS\r\nA1 OK [APPENDUID 7 1:3] done\r\nA2 OK [APPENDUID 7 4] done\r\n")
	srv := startServer(t, sender(data))
	p := newProxy(t, srv.addr(), Faults{CutAfterBytes: Cut{Before: []byte("OK [APPENDUID"), Dir: ServerToClient, P: 1, MaxCuts: 1}})
	want := "* OK ready\r\n* 3 EXISTS\r\nA1 "
	if got := readAll(dial(t, p.Addr())); string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// The budget is spent: the next connection gets everything.
	if got := readAll(dial(t, p.Addr())); !bytes.Equal(got, data) {
		t.Errorf("after the budget: got %q, want all of it", got)
	}
	if ev := p.Events(); len(ev) != 1 || ev[0].At != int64(len(want)) || string(ev[0].Tail) != want {
		t.Errorf("events = %v", ev)
	}
}

func TestProxyCutBeforePatternAcrossWrites(t *testing.T) {
	got := make(chan []byte, 1)
	srv := startServer(t, func(c net.Conn) { got <- readAll(c) })
	p := newProxy(t, srv.addr(), Faults{CutAfterBytes: Cut{Before: []byte("cde"), Dir: ClientToServer, P: 1}})
	c := dial(t, p.Addr())
	c.Write([]byte("abc"))
	time.Sleep(50 * time.Millisecond)
	c.Write([]byte("defgh"))
	select {
	case b := <-got:
		// "ab" if both writes came as one chunk, "abc" if the pattern began
		// in the first one; never anything after it.
		if s := string(b); s != "ab" && s != "abc" {
			t.Errorf("the server got %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not cut")
	}
	if _, err := New("127.0.0.1:1", Faults{CutAfterBytes: Cut{Before: bytes.Repeat([]byte("x"), 49), P: 1}}); err == nil {
		t.Error("New accepted a 49-byte pattern")
	}
}
