// Package testproc holds what the throwaway test servers (dovecottest,
// servertest) need of the operating system: free ports, where their
// directories go, and the processes a daemon left behind.
package testproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FreePorts picks n distinct free TCP ports on 127.0.0.1. Another process
// may take one before the server binds it; dovecottest then retries with
// new ports.
//
// They are taken below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range; 32768-60999 by default), where
// the kernel never hands a port out by itself. A port from that range,
// which listening on port 0 gives, could be taken between this check and
// the server's bind by any outgoing connection of the tests running
// beside (the local end of a connection comes from the same range): in
// the suite Courier once failed to start with "bind: Address already in
// use". Where the range leaves too little below it, the kernel picks.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	lo := ephemeralLow()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		addr := "127.0.0.1:0"
		if lo-freePortsFrom >= 1000 && tries < 1000 {
			addr = "127.0.0.1:" + strconv.Itoa(freePortsFrom+rand.IntN(lo-freePortsFrom))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if addr == "127.0.0.1:0" {
				return nil, err
			}
			continue // in use: another
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// freePortsFrom is the lowest port FreePorts gives.
const freePortsFrom = 10000

// ephemeralLow is the first port of the kernel's ephemeral range, or
// 32768 (Linux's default) where it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil {
		return 32768
	}
	return lo
}

// TempParent is where instance directories go: os.TempDir(), unless its
// path is so long that UNIX sockets under DIR/run would pass the 108-byte
// limit of a socket path.
func TempParent() string {
	if d := os.TempDir(); len(d) <= 40 {
		return d
	}
	return "/tmp"
}

// Greets reports whether a server at addr answers a connection with a
// first line that starts with prefix.
func Greets(addr, prefix string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	return ReadsPrefix(c, prefix)
}

// ReadsPrefix reports whether the first line read from c starts with prefix.
func ReadsPrefix(c net.Conn, prefix string) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, prefix)
}

// Children lists the processes whose parent is one of parents.
func Children(parents ...int) []int {
	want := map[int]bool{}
	for _, p := range parents {
		want[p] = true
	}
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, err := Stat(n); err == nil && want[ppid] {
			kids = append(kids, n)
		}
	}
	return kids
}

// Stat returns the parent and the state letter of a process.
func Stat(pid int) (ppid int, state byte, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, errors.New("bad stat")
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err
}

// Freeze stops pid (SIGSTOP) and waits, up to a second, until it has
// stopped: kill returns when the signal is sent, not taken, and a process
// still running meanwhile could fork a child a listing of its children
// made just after would miss.
func Freeze(pid int) {
	syscall.Kill(pid, syscall.SIGSTOP)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, state, err := Stat(pid); err != nil || state == 'T' || state == 't' || state == 'Z' || state == 'X' {
			return
		}
	}
}

// Alive reports whether pid exists and is not a zombie (an init that does
// not reap, as in some containers, leaves zombies behind for good).
func Alive(pid int) bool {
	_, state, err := Stat(pid)
	return err == nil && state != 'Z' && state != 'X'
}
