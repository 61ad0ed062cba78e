package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

// isJournal reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM (env) holds "DEVICE:INODE" of that stream in
// decimal, and w's file has the same, as sd-daemon's check does. A child
// whose stderr was redirected inherits the variable but not the stream.
func isJournal(env string, w io.Writer) bool {
	if env == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil || n != 2 {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// journalPriority is the sd-daemon(3) prefix of a record at level l: the
// syslog priorities debug (7), info (6), warning (4) and err (3).
func journalPriority(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "<7>"
	case l < slog.LevelWarn:
		return "<6>"
	case l < slog.LevelError:
		return "<4>"
	default:
		return "<3>"
	}
}

// journalHandler writes each record through its Handler (a TextHandler
// writing to out, one Write per record) with the record's priority in
// front.
type journalHandler struct {
	slog.Handler
	out *journalWriter
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.out.mu.Lock()
	defer h.out.mu.Unlock()
	h.out.prefix = journalPriority(r.Level)
	return h.Handler.Handle(ctx, r)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithAttrs(as), out: h.out}
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	return &journalHandler{Handler: h.Handler.WithGroup(name), out: h.out}
}

// journalWriter puts prefix in front of each line written to w. It is
// shared by a journalHandler and the handlers derived from it.
type journalWriter struct {
	w      io.Writer
	mu     sync.Mutex
	prefix string // protected by mu
	buf    []byte // protected by mu
}

// Write is called by the TextHandler with one whole line, under mu.
func (jw *journalWriter) Write(p []byte) (int, error) {
	jw.buf = append(append(jw.buf[:0], jw.prefix...), p...)
	if _, err := jw.w.Write(jw.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
