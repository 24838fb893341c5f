package migrate

import (
	"errors"
	"fmt"
)

// Errors that end a run. Every error the engine returns wraps one of these
// or is a *RetryableError; main maps them to exit codes in one place.
var (
	// ErrUsage: the command line asked for something impossible; nothing was done.
	ErrUsage = errors.New("usage")
	// ErrAuth: the server refused the credentials.
	ErrAuth = errors.New("authentication failed")
	// ErrTLS: the connection could not be protected as asked (bad certificate,
	// wrong host name, no STARTTLS).
	ErrTLS = errors.New("TLS failed")
	// ErrQuota: the destination is full; the run stops, nothing is lost.
	ErrQuota = errors.New("destination over quota")
)

// ErrTooManyConnections: a server refused a login for the number of
// sessions the user already has (IMAP's [LIMIT], as Dovecot answers beyond
// mail_max_userip_connections). Not a wrong password: it comes wrapped in a
// *RetryableError, and a worker that meets it while others are copying
// leaves its folders to them (run.go).
var ErrTooManyConnections = errors.New("too many connections")

// RetryableError is a failure of the connection rather than of the data:
// connection reset, timeout, BYE, [UNAVAILABLE]. Reconnecting and resuming
// the folder is safe.
type RetryableError struct{ Err error }

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// MessageError is a failure of one message only (the destination refused it):
// it is named in the report and the run goes on.
type MessageError struct{ Err error }

func (e *MessageError) Error() string { return e.Err.Error() }
func (e *MessageError) Unwrap() error { return e.Err }

// FolderOpenError is a server's NO to opening one folder (SELECT or
// EXAMINE): the folder alone fails, the others are copied, and the run
// ends with exit 1 naming it (unopened.go).
type FolderOpenError struct {
	Folder string // the folder's name on that server
	Err    error
}

func (e *FolderOpenError) Error() string { return e.Err.Error() }
func (e *FolderOpenError) Unwrap() error { return e.Err }

// CutInsideMessageError is a connection lost while the source was sending
// a message's bytes: a fault of the network or the server, not of that
// message (poison.go does not charge the message with it).
type CutInsideMessageError struct{ Err error }

func (e *CutInsideMessageError) Error() string { return e.Err.Error() }
func (e *CutInsideMessageError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is worth a reconnect and another try.
func IsRetryable(err error) bool {
	var r *RetryableError
	return errors.As(err, &r)
}

// IsMessageError reports whether err concerns one message only.
func IsMessageError(err error) bool {
	var m *MessageError
	return errors.As(err, &m)
}

// Usagef makes an ErrUsage error.
func Usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}
