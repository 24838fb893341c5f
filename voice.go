package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// voiceHandler writes log records in mailferry's one voice, a line each:
//
//	mailferry: warning: INBOX: message <a@b> (UID 42) failed: …
//	mailferry: debug: copying (folder=INBOX)
//
// Attributes given With (a batch's account) come first as "key value: ";
// a record's own attributes follow in parentheses. There is no second
// format: --log-level only chooses which lines are written.
type voiceHandler struct {
	mu     *sync.Mutex
	w      io.Writer
	level  slog.Leveler
	prefix string // from WithAttrs: "account 3: "
}

func newVoiceLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(&voiceHandler{mu: &sync.Mutex{}, w: w, level: level})
}

func (h *voiceHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *voiceHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("mailferry: ")
	switch {
	case r.Level >= slog.LevelError:
		b.WriteString("error: ")
	case r.Level >= slog.LevelWarn:
		b.WriteString("warning: ")
	case r.Level < slog.LevelInfo:
		b.WriteString("debug: ")
	}
	b.WriteString(h.prefix)
	b.WriteString(oneLine(r.Message))
	var attrs []string
	r.Attrs(func(a slog.Attr) bool {
		if v := a.Value.Resolve().String(); v != "" {
			attrs = append(attrs, a.Key+"="+oneLine(v))
		}
		return true
	})
	if len(attrs) > 0 {
		b.WriteString(" (" + strings.Join(attrs, ", ") + ")")
	}
	b.WriteString("\n")
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *voiceHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := *h
	for _, a := range as {
		n.prefix += fmt.Sprintf("%s %s: ", a.Key, oneLine(a.Value.Resolve().String()))
	}
	return &n
}

func (h *voiceHandler) WithGroup(string) slog.Handler { return h }
