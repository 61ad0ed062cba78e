package gateway

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/fobgw/fobgw/config"
	"github.com/fobgw/fobgw/config/configtest"
)

// baseConfig is the story's FOB (configtest.Base).
const baseConfig = configtest.Base

func withLine(tb testing.TB, key, repl string) string {
	tb.Helper()
	return configtest.WithLine(tb, key, repl)
}

func replaceLine(tb testing.TB, text, key, repl string) string {
	tb.Helper()
	return configtest.ReplaceLine(tb, text, key, repl)
}

func mustParse(tb testing.TB, text string) *config.Config {
	tb.Helper()
	c, err := config.ParseConfig("test.conf", []byte(text))
	if err != nil {
		tb.Fatalf("ParseConfig: %v", err)
	}
	return c
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testLogger logs to t.Log until the test ends (goroutines may outlive it).
func testLogger(tb testing.TB) *slog.Logger {
	w := &tbWriter{tb: tb}
	tb.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool // protected by mu
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
