package imap

import (
	"errors"
	"fmt"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailferry/mailferry/migrate"
	"github.com/mailferry/mailferry/migrate/mailconn"
)

// imapAuth is how a connection to the server logged in, for the raw
// MULTIAPPEND connection to do the same.
type imapAuth struct {
	mech   string // "" for LOGIN
	saslIR bool   // the server takes an initial response with AUTHENTICATE
}

// authenticateIMAP logs c in with token. On any error the caller closes c.
func authenticateIMAP(c *imapclient.Client, cfg mailconn.ServerConfig, token string) (imapAuth, error) {
	caps := c.Caps()
	mech, err := mailconn.ChooseOAuth2(cfg, func(m string) bool { return caps.Has(imap.AuthCap(m)) }, caps.AuthMechanisms())
	if err != nil {
		return imapAuth{}, err
	}
	auth := imapAuth{mech: mech, saslIR: caps.Has(imap.CapSASLIR)}
	cl := mailconn.NewOAuth2Client(mech, cfg.User, token, cfg.Addr)
	err = c.Authenticate(cl)
	var ie *imap.Error
	switch {
	case err == nil:
		return auth, nil
	case cl.Refusal() != nil:
		return auth, mailconn.Refused(cfg, cl.Refusal(), token)
	case errors.As(err, &ie):
		if later := refusedForNow(cfg, ie.Code, mailconn.RedactToken(ie.Text, token)); later != nil {
			return auth, later
		}
		return auth, mailconn.Refused(cfg, mailconn.NewRefusal(mech, ie.Text), token)
	}
	return auth, &migrate.RetryableError{Err: fmt.Errorf("imap: %s: authenticate: %s", cfg, mailconn.RedactToken(err.Error(), token))}
}
