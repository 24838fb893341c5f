package migrate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailferry/mailferry/formats"
)

// fakeClock advances only when someone sleeps: elapsed fake time is the sum
// of the waits a single goroutine was asked for.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept int
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept++
	return ctx.Err()
}

// fakeSource serves n messages of size bytes each, in reads of 32 KiB.
type fakeSource struct {
	n    int
	size int
}

func (s *fakeSource) Folders(context.Context) ([]formats.Folder, error) { return nil, nil }
func (s *fakeSource) List(context.Context, formats.Folder) (uint32, []formats.Message, error) {
	var msgs []formats.Message
	for i := 0; i < s.n; i++ {
		msgs = append(msgs, formats.Message{ID: strconv.Itoa(i + 1), Size: int64(s.size)})
	}
	return 1, msgs, nil
}
func (s *fakeSource) Headers(context.Context, formats.Folder, []formats.Message, func(formats.Message, []byte) error) error {
	return nil
}
func (s *fakeSource) Fetch(ctx context.Context, f formats.Folder, msgs []formats.Message, fn func(formats.Message, io.Reader) error) error {
	for i, m := range msgs {
		body := bytes.Repeat([]byte{byte('a' + i%26)}, s.size)
		if err := fn(m, io.LimitReader(bytes.NewReader(body), int64(s.size))); err != nil {
			return err
		}
	}
	return nil
}
func (s *fakeSource) Close() error { return nil }

type fakeDeletingSource struct{ fakeSource }

func (s *fakeDeletingSource) Delete(context.Context, formats.Folder, []formats.Message) error {
	return nil
}

// drain fetches every message of src and returns the bytes read per message.
func drain(t *testing.T, src Source) []int64 {
	t.Helper()
	ctx := context.Background()
	_, msgs, _ := src.List(ctx, formats.Folder{})
	var got []int64
	err := src.Fetch(ctx, formats.Folder{}, msgs, func(m formats.Message, body io.Reader) error {
		buf := make([]byte, 32<<10)
		n, err := io.CopyBuffer(io.Discard, body, buf)
		got = append(got, n)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRateLimitBytes200KBPerSecondOver1MBTakesAbout5s(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	src := LimitSource(&fakeSource{n: 10, size: 100_000}, NewLimits(200_000, 0, clock))
	got := drain(t, src)
	for i, n := range got {
		if n != 100_000 {
			t.Errorf("message %d: read %d bytes, want 100000", i, n)
		}
	}
	// 1 MB at 200 KB/s is 5 s, less the bucket's first eighth of a second.
	elapsed := clock.Now().Sub(start)
	if elapsed < 4800*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("1 MB at 200 KB/s took %v of fake time, want about 5s (4.875s)", elapsed)
	}
	t.Logf("1 MB at 200 KB/s: %v in %d waits", elapsed, clock.slept)
}

func TestRateLimitMessagesPerSecond(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	src := LimitSource(&fakeSource{n: 11, size: 10}, NewLimits(0, 2, clock))
	drain(t, src)
	// The first message goes at once, each of the other 10 half a second later.
	if elapsed := clock.Now().Sub(start); elapsed != 5*time.Second {
		t.Errorf("11 messages at 2/s took %v of fake time, want 5s", elapsed)
	}
}

func TestRateLimitBothTheSlowerWins(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	// 20 messages of 1000 bytes: 20 KB at 1 MB/s is nothing; 20 at 4/s is 4.75 s.
	drain(t, LimitSource(&fakeSource{n: 20, size: 1000}, NewLimits(1_000_000, 4, clock)))
	if elapsed := clock.Now().Sub(start); elapsed < 4700*time.Millisecond || elapsed > 4800*time.Millisecond {
		t.Errorf("took %v of fake time, want 4.75s", elapsed)
	}
}

func TestRateLimiterIdleRefillsOnlyToBurst(t *testing.T) {
	clock := newFakeClock()
	l := NewLimiter(100, 50, clock)
	ctx := context.Background()
	clock.Sleep(ctx, time.Hour) // a long idle time earns no more than burst
	start := clock.Now()
	if err := l.Wait(ctx, 150); err != nil {
		t.Fatal(err)
	}
	if elapsed := clock.Now().Sub(start); elapsed != time.Second {
		t.Errorf("150 tokens with 50 in the bucket at 100/s waited %v, want 1s", elapsed)
	}
}

func TestRateLimiterStopsWithContext(t *testing.T) {
	l := NewLimiter(1, 1, nil) // real time
	ctx, cancel := context.WithCancel(context.Background())
	l.Wait(ctx, 1)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	begin := time.Now()
	if err := l.Wait(ctx, 1000); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait returned %v, want context.Canceled", err)
	}
	if time.Since(begin) > 10*time.Second {
		t.Error("a cancelled Wait did not return promptly")
	}
}

// Shared by several workers, the limit is for all of them together. Real
// time, so only a lower bound is checked: pacing can make a run slower than
// the arithmetic, never faster.
func TestRateLimitSharedByWorkers(t *testing.T) {
	lim := NewLimits(1_000_000, 0, nil)
	var wg sync.WaitGroup
	begin := time.Now()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			drain(t, LimitSource(&fakeSource{n: 2, size: 50_000}, lim))
		}()
	}
	wg.Wait()
	// 400 KB at 1 MB/s, less the 125 KB bucket: at least 275 ms.
	if elapsed := time.Since(begin); elapsed < 270*time.Millisecond {
		t.Errorf("4 workers moved 400 KB at 1 MB/s in %v: the limit is not shared", elapsed)
	}
}

func TestLimitSourceKeepsDeleter(t *testing.T) {
	lim := NewLimits(0, 10, nil)
	if _, ok := As[Deleter](LimitSource(&fakeSource{}, lim)); ok {
		t.Error("a source without Delete became a Deleter")
	}
	if _, ok := As[Deleter](LimitSource(&fakeDeletingSource{}, lim)); !ok {
		t.Error("the wrapper hid the source's Deleter")
	}
	if s := LimitSource(&fakeSource{}, nil); s == nil {
		t.Error("nil limits must return the source as it is")
	}
}

// fakeSink records what reached it.
type fakeSink struct{ stored []string }

func (s *fakeSink) Separator() rune                                   { return '/' }
func (s *fakeSink) Folders(context.Context) ([]formats.Folder, error) { return nil, nil }
func (s *fakeSink) Ensure(context.Context, []string) (formats.Folder, error) {
	return formats.Folder{}, nil
}
func (s *fakeSink) Index(context.Context, formats.Folder, func(string) bool, func(string, formats.Key) error) error {
	return nil
}
func (s *fakeSink) Store(_ context.Context, _ formats.Folder, m formats.Message, _ int64, body io.Reader) (string, error) {
	io.Copy(io.Discard, body)
	s.stored = append(s.stored, m.ID)
	return m.ID, nil
}
func (s *fakeSink) Close() error { return nil }

type fakeFlushSink struct{ fakeSink }

func (s *fakeFlushSink) Flush(context.Context) error { return nil }

type fakeCommitSink struct{ fakeSink }

func (s *fakeCommitSink) Commit(context.Context) ([]StoreResult, error) { return nil, nil }

type fakeCommitFlushSink struct{ fakeSink }

func (s *fakeCommitFlushSink) Commit(context.Context) ([]StoreResult, error) { return nil, nil }
func (s *fakeCommitFlushSink) Flush(context.Context) error                   { return nil }

func TestLimitMessageSizeRefusesBeforeSending(t *testing.T) {
	inner := &fakeSink{}
	dst := LimitMessageSize(inner, 1000)
	ctx := context.Background()
	body := &formats.CountingReader{R: strings.NewReader(strings.Repeat("x", 2000))}
	_, err := dst.Store(ctx, formats.Folder{}, formats.Message{ID: "big", Size: 2000}, 2000, body)
	if !IsMessageError(err) || !strings.Contains(err.Error(), "--max-message-size") {
		t.Fatalf("an oversized message gave %v, want a *MessageError naming --max-message-size", err)
	}
	if body.N != 0 || len(inner.stored) != 0 {
		t.Errorf("the oversized message was sent (%d bytes read, %v stored)", body.N, inner.stored)
	}
	if _, err := dst.Store(ctx, formats.Folder{}, formats.Message{ID: "ok", Size: 1000}, 1000, strings.NewReader(strings.Repeat("y", 1000))); err != nil {
		t.Fatal(err)
	}
	// Size unknown (POP3): the destination judges.
	if _, err := dst.Store(ctx, formats.Folder{}, formats.Message{ID: "pop", Size: -1}, -1, strings.NewReader(strings.Repeat("z", 5000))); err != nil {
		t.Fatal(err)
	}
	if strings.Join(inner.stored, ",") != "ok,pop" {
		t.Errorf("stored %v, want ok and pop", inner.stored)
	}
}

func TestLimitMessageSizeKeepsCommitterAndFlusher(t *testing.T) {
	for _, tc := range []struct {
		sink               Sink
		committer, flusher bool
	}{
		{&fakeSink{}, false, false},
		{&fakeFlushSink{}, false, true},
		{&fakeCommitSink{}, true, false},
		{&fakeCommitFlushSink{}, true, true},
	} {
		s := LimitMessageSize(tc.sink, 10)
		_, c := As[Committer](s)
		_, f := As[Flusher](s)
		if c != tc.committer || f != tc.flusher {
			t.Errorf("%T: wrapper is Committer %v Flusher %v, want %v %v", tc.sink, c, f, tc.committer, tc.flusher)
		}
	}
	if s := LimitMessageSize(&fakeSink{}, 0); s == nil {
		t.Error("no limit must return the sink as it is")
	}
}

// fakeStartingSource is a fakeSource that can start its Fetches ahead
// (FetchStarter).
type fakeStartingSource struct{ fakeSource }

func (s *fakeStartingSource) StartFetch(f formats.Folder, msgs []formats.Message) func(context.Context, func(formats.Message, io.Reader) error) error {
	return func(ctx context.Context, fn func(formats.Message, io.Reader) error) error {
		return s.Fetch(ctx, f, msgs, fn)
	}
}

// TestLimitSourcePacesAStartedFetch: a window's Fetch started ahead
// (window.go) is paced as Fetch is; As finds the limiter's StartFetch, not
// the source's own.
func TestLimitSourcePacesAStartedFetch(t *testing.T) {
	clock := newFakeClock()
	start := clock.Now()
	src := LimitSource(&fakeStartingSource{fakeSource{n: 11, size: 10}}, NewLimits(0, 2, clock))
	fs, ok := As[FetchStarter](src)
	if !ok {
		t.Fatal("the limited source hides its source's StartFetch")
	}
	_, msgs, _ := src.List(context.Background(), formats.Folder{})
	fetch := fs.StartFetch(formats.Folder{}, msgs)
	if fetch == nil {
		t.Fatal("StartFetch returned nil")
	}
	n := 0
	if err := fetch(context.Background(), func(formats.Message, io.Reader) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if elapsed := clock.Now().Sub(start); n != 11 || elapsed != 5*time.Second {
		t.Errorf("%d messages in %v of fake time, want 11 in 5s (2 a second)", n, elapsed)
	}
	if fs, _ := As[FetchStarter](LimitSource(&fakeSource{}, NewLimits(0, 2, clock))); fs == nil || fs.StartFetch(formats.Folder{}, msgs) != nil {
		t.Error("over a source that cannot start a Fetch, StartFetch should return nil")
	}
}
