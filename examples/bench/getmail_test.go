package bench

import (
	"os"
	"path/filepath"
)

// getmail6 6.18.11 (Debian's) forks a child for every Maildir delivery and
// waits for it through a SIGCHLD handler and a condition variable
// (getmailcore/baseclasses.py, ForkingBase): the handler is installed only
// after fork(), and the parent waits on the condition only after logging
// the child's pid. A child that exits before the handler is installed
// leaves its signal lost; one that exits between the two has the handler
// reap it and notify nobody. Either way getmail waits for its 180 s timeout
// and fails the run. On a tmpfs, where a delivery takes microseconds, the
// child wins often: every getmail6 run of the benchmark's full runs failed
// so (examples/bench/RESULTS.md), though the benchmark then pinned it to
// one CPU and re-sent a SIGCHLD for any child left a zombie (which cannot
// help the second case: the child is reaped, the handler gone).
//
// Upstream's answer (getmail6 issues 226 and 245) replaced the handler by a
// blocking wait on the child. getmailWaitPy does the same for the version
// installed here: a sitecustomize module on getmail's PYTHONPATH that makes
// ForkingBase wait for its child with os.waitpid, and leaves every other
// line of getmail as shipped. It patches only the handler-based code (a
// getmail6 without ForkingBase._child_handler is left alone) and says on
// standard error when it did not patch, which the benchmark's log of the
// run shows.
const getmailWaitPy = `# Written by mailferry's benchmark (examples/bench/getmail_test.go).
import os
import sys

try:
    from getmailcore import baseclasses as _b
    from getmailcore.exceptions import getmailOperationError as _err
except Exception as e:
    sys.stderr.write("mailferry bench: getmail6 not patched: %s\n" % e)
    _b = None

if _b is not None and hasattr(getattr(_b, "ForkingBase", None), "_child_handler"):
    def _prepare_child(self):
        pass

    def _wait_for_child(self, childpid):
        pid, status = os.waitpid(childpid, 0)
        if os.WIFSIGNALED(status):
            raise _err("child pid %d killed by signal %d" % (pid, os.WTERMSIG(status)))
        if not os.WIFEXITED(status):
            raise _err("child pid %d failed to exit" % pid)
        return os.WEXITSTATUS(status)

    _b.ForkingBase._prepare_child = _prepare_child
    _b.ForkingBase._wait_for_child = _wait_for_child
elif _b is not None:
    sys.stderr.write("mailferry bench: getmail6 not patched: no ForkingBase._child_handler\n")
`

// getmailWait writes getmailWaitPy as sitecustomize.py in a directory of
// its own and returns that directory, for getmail's PYTHONPATH.
func (e *bpEnv) getmailWait() string {
	d := filepath.Join(e.root, "getmail-wait")
	if err := os.MkdirAll(d, 0o755); err != nil {
		e.b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "sitecustomize.py"), []byte(getmailWaitPy), 0o644); err != nil {
		e.b.Fatal(err)
	}
	return d
}
