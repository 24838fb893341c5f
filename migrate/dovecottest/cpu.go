package dovecottest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTick is USER_HZ on Linux: /proc's CPU times are in these.
const clockTick = 100

// ProcStat returns the parent, the name and the CPU ticks (own and
// waited-for children's) of a process, from /proc (Linux).
func ProcStat(pid int) (ppid int, comm string, ticks int64, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", 0, false
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return 0, "", 0, false
	}
	comm = string(b[open+1 : close])
	f := strings.Fields(string(b[close+1:]))
	// f[0] state, f[1] ppid, f[11..14] utime stime cutime cstime
	if len(f) < 15 {
		return 0, "", 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	for _, x := range f[11:15] {
		v, _ := strconv.ParseInt(x, 10, 64)
		ticks += v
	}
	return ppid, comm, ticks, true
}

// MasterPID is the pid of the server's dovecot master (0 if unknown).
func (s *Server) MasterPID() int {
	b, err := os.ReadFile(filepath.Join(s.Dir, "run", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Children maps each parent pid to its children's pids, from /proc.
func Children() map[int][]int {
	ents, _ := os.ReadDir("/proc")
	kids := map[int][]int{}
	for _, en := range ents {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		if ppid, _, _, ok := ProcStat(pid); ok {
			kids[ppid] = append(kids[ppid], pid)
		}
	}
	return kids
}

// CPU is the CPU seconds used so far by the servers' masters, their live
// children and the children they have reaped (a finished imap process
// moves into its master's cutime).
func CPU(servers ...*Server) float64 {
	if len(servers) == 0 {
		return 0
	}
	kids := Children()
	var ticks int64
	for _, s := range servers {
		m := s.MasterPID()
		if m == 0 {
			continue
		}
		_, _, t, _ := ProcStat(m)
		ticks += t
		for _, k := range kids[m] {
			_, _, t, _ := ProcStat(k)
			ticks += t
		}
	}
	return float64(ticks) / clockTick
}
