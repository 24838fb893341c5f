package dovecottest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// OAuth2Server is a token introspection endpoint (RFC 7662) for an
// instance started with Options.OAuth2IntrospectionURL = o.URL: Dovecot's
// oauth2 passdb POSTs token=... to it and reads {"active": ..., "username":
// ...}. A token is active when it was granted (Grant) and not revoked or
// expired since; Dovecot also checks that the username matches the user who
// logs in.
type OAuth2Server struct {
	URL string // the introspection URL

	mu      sync.Mutex
	users   map[string]string // token -> user
	expire  map[string]int    // token -> introspections left that answer "not active"
	asked   []string          // every token introspected, in order
	refused []string          // the tokens answered "not active"
}

// StartOAuth2 starts an introspection endpoint on 127.0.0.1, stopped by
// t.Cleanup.
func StartOAuth2(t testing.TB) *OAuth2Server {
	t.Helper()
	o := &OAuth2Server{users: map[string]string{}, expire: map[string]int{}}
	hs := httptest.NewServer(http.HandlerFunc(o.introspect))
	t.Cleanup(hs.Close)
	o.URL = hs.URL + "/introspect"
	return o
}

// Grant makes token active for user.
func (o *OAuth2Server) Grant(token, user string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.users[token] = user
}

// Revoke makes token inactive.
func (o *OAuth2Server) Revoke(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.users, token)
}

// ExpireNext makes the next n introspections of token answer "not active"
// (as for an expired token), whether or not it is granted.
func (o *OAuth2Server) ExpireNext(token string, n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.expire[token] = n
}

// Asked returns every token introspected so far, in order.
func (o *OAuth2Server) Asked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.asked...)
}

// Refused returns the introspected tokens that were answered "not active".
func (o *OAuth2Server) Refused() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.refused...)
}

func (o *OAuth2Server) introspect(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	token := r.PostForm.Get("token")
	o.mu.Lock()
	o.asked = append(o.asked, token)
	user, ok := o.users[token]
	if o.expire[token] > 0 {
		o.expire[token]--
		ok = false
	}
	if !ok {
		o.refused = append(o.refused, token)
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user, "scope": "mail"})
}
