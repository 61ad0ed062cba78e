package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMux(t *testing.T) {
	srv := httptest.NewServer(newMux(slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, path string
		status     int
		check      func(t *testing.T, body []byte)
	}{
		{"ip is the client's address", "/ip", http.StatusOK, func(t *testing.T, body []byte) {
			if got := strings.TrimSpace(string(body)); got != "127.0.0.1" {
				t.Errorf("/ip = %q, want 127.0.0.1", got)
			}
		}},
		{"big defaults to 256 KiB", "/big", http.StatusOK, func(t *testing.T, body []byte) {
			if len(body) != 256<<10 {
				t.Errorf("len = %d, want %d", len(body), 256<<10)
			}
		}},
		{"big of a given size", "/big?size=1000", http.StatusOK, func(t *testing.T, body []byte) {
			if len(body) != 1000 {
				t.Errorf("len = %d, want 1000", len(body))
			}
			if strings.Count(string(body), "\x00") > 100 {
				t.Errorf("body is mostly zeros; want random-ish bytes")
			}
		}},
		{"generate_204 answers 204 with no body", "/generate_204", http.StatusNoContent, func(t *testing.T, body []byte) {
			if len(body) != 0 {
				t.Errorf("body %q, want none", body)
			}
		}},
		{"big rejects a bad size", "/big?size=-1", http.StatusBadRequest, nil},
		{"big rejects a huge size", "/big?size=99999999999", http.StatusBadRequest, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}
