package migrate

import (
	"context"
	"testing"
	"time"
)

// The crew hands a retired worker's folders to a worker that stays, ends
// the staying workers only when every live one stays, never lets the last
// worker retire, and lets a stopped run's staying workers go.
func TestCrewLeavesNoFolderBehind(t *testing.T) {
	ctx := context.Background()
	c := newCrew(3) // workers A, B, C
	type got struct {
		i  int
		ok bool
	}
	leftover := func() chan got {
		ch := make(chan got, 1)
		go func() { i, ok := c.leftover(ctx); ch <- got{i, ok} }()
		return ch
	}
	waiting := func(ch chan got, who string) {
		t.Helper()
		select {
		case g := <-ch:
			t.Fatalf("%s did not wait: got %+v", who, g)
		case <-time.After(50 * time.Millisecond):
		}
	}
	receive := func(ch chan got, who string) got {
		t.Helper()
		select {
		case g := <-ch:
			return g
		case <-time.After(5 * time.Second):
			t.Fatalf("%s still waits", who)
			return got{}
		}
	}

	a := leftover() // A has nothing more to take: it stays for B and C
	waiting(a, "A")
	b := &worker{hasNext: true, next: 9}
	if !c.retire(b, 7) { // B's login refused: it leaves folder 7 and the one it took early
		t.Fatal("B could not retire beside A and C")
	}
	if b.hasNext {
		t.Error("B still holds the folder it took early")
	}
	if g := receive(a, "A"); !g.ok || (g.i != 7 && g.i != 9) {
		t.Fatalf("A got %+v, want folder 7 or 9", g)
	}
	a = leftover() // A is back for the other one
	if g := receive(a, "A"); !g.ok || (g.i != 7 && g.i != 9) {
		t.Fatalf("A got %+v, want the other of 7 and 9", g)
	}
	cc := leftover() // C is done; A still copies
	waiting(cc, "C")
	a = leftover() // A is done too: both end
	if g := receive(a, "A"); g.ok {
		t.Errorf("A got folder %d, want to end", g.i)
	}
	if g := receive(cc, "C"); g.ok {
		t.Errorf("C got folder %d, want to end", g.i)
	}

	last := newCrew(1)
	if last.retire(&worker{}, 1) {
		t.Error("the last worker retired: its folder would be left with no one")
	}

	stopped := newCrew(2)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan bool, 1)
	go func() { _, ok := stopped.leftover(sctx); done <- ok }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case ok := <-done:
		if ok {
			t.Error("a stopped run handed out a folder")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a staying worker still waits after the run was stopped")
	}
}
