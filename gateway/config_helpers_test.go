package gateway

import (
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
