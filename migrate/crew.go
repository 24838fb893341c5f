package migrate

import (
	"context"
	"errors"
	"sync"
)

// When a server limits the sessions one user may have (Dovecot's
// mail_max_userip_connections, 10 unless set; a mail program the user has
// open takes some), the logins of a run's later workers can be refused
// with [LIMIT] (ErrTooManyConnections), and a server whose authentication
// is briefly broken refuses them outright (refusedLogin). That is no
// reason to stop: a worker whose login is refused for a folder it has not
// begun, while other workers are live, leaves that folder (and the one it
// took early, if any) to them and ends, and the run goes on with the
// connections it has. A worker that finds nothing more to take stays, its
// connections open, until every other worker has ended or stays too, and
// takes what they leave meanwhile: a folder is never left with no one to
// copy it. The last worker does not leave: a refusal for the number of
// sessions is tried again with the usual backoff, as a lost connection is;
// a refusal of the password ends the run (exit 1, a rerun resumes). (An
// IMAP destination whose APPEND connection is refused for the number of
// sessions stores on its main connection: migrate/imap/multiappend.go.)

// crew is what the run's workers share to hand folders on.
type crew struct {
	mu       sync.Mutex
	cond     *sync.Cond // signalled when returned or live changes
	live     int        // workers not ended (those staying count)
	staying  int        // of them, those with nothing to do (leftover)
	returned []int      // folders (plan indexes) left by workers that ended
}

func newCrew(workers int) *crew {
	c := &crew{live: workers}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// leaveError is a worker's connect refused while other workers are live
// (worker.folder): the folder goes back to them. It does not unwrap to the
// refusal (a *RetryableError for too many sessions), so that engine.retry
// does not try again.
type leaveError struct{ err error }

func (e *leaveError) Error() string { return e.err.Error() }

// refusedLogin says err is a login refused for the number of sessions, or
// refused outright. Outright too: a worker logs in only after the run's
// first login with the same credentials was accepted (BeforeLogin), so the
// refusal is the server's moment (Dovecot answers "Authentication failed."
// while its auth process restarts; Gmail refuses an OAuth2 session beyond
// its 15 with an error challenge go-imap's client reads as a bad token),
// not a wrong password.
func refusedLogin(err error) bool {
	return errors.Is(err, ErrTooManyConnections) || errors.Is(err, ErrAuth)
}

// others says another worker is live.
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
	c.cond.Broadcast()
	return true
}

// leftover is for a worker the run has nothing more to hand: it waits
// until a retired worker leaves a folder (and returns it) or until every
// live worker is waiting here too, or the run is stopped (false: the
// worker ends).
func (c *crew) leftover(ctx context.Context) (int, bool) {
	stop := context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cond.Broadcast()
	})
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.staying++
	for len(c.returned) == 0 && c.staying < c.live && ctx.Err() == nil {
		c.cond.Wait()
	}
	c.staying--
	if n := len(c.returned); n > 0 && ctx.Err() == nil {
		i := c.returned[n-1]
		c.returned = c.returned[:n-1]
		return i, true
	}
	c.live--
	c.cond.Broadcast()
	return 0, false
}
