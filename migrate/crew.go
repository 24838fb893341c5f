package migrate

import "sync"

// When a server limits the sessions one user may have (Dovecot's
// mail_max_userip_connections, 10 unless set; a mail program the user has
// open takes some), the logins of a run's later workers can be refused
// with [LIMIT] (ErrTooManyConnections). That is no reason to stop: a
// worker that cannot connect for a folder it has not begun, while others
// are copying, leaves that folder (and the one it took early, if any) to
// them and ends, and the run goes on with the connections it has. The last
// worker standing does not leave: it tries again with the usual backoff,
// as for a lost connection. (An IMAP destination whose APPEND connection
// is refused so stores on its main connection: migrate/imap/multiappend.go.)

// crew is what the run's workers share to hand folders on.
type crew struct {
	mu       sync.Mutex
	live     int   // workers not ended
	returned []int // folders (plan indexes) left by workers that ended
}

// tooManyError is a worker's connect refused for the number of sessions
// while other workers are copying (worker.folder): the folder goes back to
// the others. It does not unwrap to the refusal, a *RetryableError, so that
// engine.retry does not try again.
type tooManyError struct{ err error }

func (e *tooManyError) Error() string { return e.err.Error() }

// others says another worker is still copying.
func (c *crew) others() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live > 1
}

// retire ends w, leaving folder i (and the folder w took early) to the
// others, when there are others; false when w is the last.
func (c *crew) retire(w *worker, i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.live <= 1 {
		return false
	}
	c.live--
	c.returned = append(c.returned, i)
	if w.hasNext {
		w.hasNext = false
		c.returned = append(c.returned, w.next)
	}
	return true
}

// leftover gives a worker that found nothing more to take a folder a
// retired worker left, or ends it (false). Under the same lock as retire:
// a folder is never left to workers that have all ended.
func (c *crew) leftover() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.returned); n > 0 {
		i := c.returned[n-1]
		c.returned = c.returned[:n-1]
		return i, true
	}
	c.live--
	return 0, false
}
