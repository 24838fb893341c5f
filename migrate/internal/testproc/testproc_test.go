package testproc

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortsBelowTheEphemeralRange: the ports FreePorts gives are
// distinct, free (a listener can take each), and below the kernel's
// ephemeral range, where no outgoing connection can take one first.
func TestFreePortsBelowTheEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	if lo-freePortsFrom < 1000 {
		t.Skipf("the ephemeral range begins at %d: too little below it, FreePorts lets the kernel pick", lo)
	}
	for range 20 {
		ports, err := FreePorts(3)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for _, p := range ports {
			if p < freePortsFrom || p >= lo || seen[p] {
				t.Fatalf("FreePorts gave %v: want 3 distinct ports in [%d, %d)", ports, freePortsFrom, lo)
			}
			seen[p] = true
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				t.Fatalf("port %d is not free: %v", p, err)
			}
			l.Close()
		}
	}
}
