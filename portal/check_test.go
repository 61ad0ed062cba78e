package portal

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCheck(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Check
	}{
		{"http://connectivitycheck.gstatic.com/generate_204", DefaultCheck},
		{"http://connectivitycheck.gstatic.com/generate_204 204", DefaultCheck},
		{"  http://check.example:8080/x?y=1   200 ", Check{URL: "http://check.example:8080/x?y=1", Status: 200}},
		{"https://[2001:db8::1]/204", Check{URL: "https://[2001:db8::1]/204", Status: 204}},
		{"off", Check{}},
		{"OFF", Check{}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCheck(tc.in)
			if err != nil {
				t.Fatalf("ParseCheck(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Fatalf("ParseCheck(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			again, err := ParseCheck(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseCheck(%q) (its String) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseCheckErrors(t *testing.T) {
	for _, tc := range []struct{ in, problem string }{
		{"", "empty value"},
		{"connectivitycheck.gstatic.com/generate_204", "not an http:// or https:// URL"},
		{"ftp://check.example/", "not an http:// or https:// URL"},
		{"http:///generate_204", "has no host"},
		{"http://user:pw@check.example/", "holds a user name"},
		{"http://check.example/#x", "has a fragment"},
		{"http://check.example:99999/", "bad port"},
		{"http://check.example/ 302", "not a success status"},
		{"http://check.example/ 404", "not a success status"},
		{"http://check.example/ ok", "not a success status"},
		{"http://check.example/ 204 extra", "has 3 words"},
		{"http://bad host/", "not a success status"},
		{"http://%zz/", "is not a URL"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseCheck(tc.in)
			var ve *ValueError
			if !errors.As(err, &ve) {
				t.Fatalf("ParseCheck(%q) = %v, want a *ValueError", tc.in, err)
			}
			if !strings.Contains(ve.Problem, tc.problem) {
				t.Errorf("problem %q, want it to say %q", ve.Problem, tc.problem)
			}
			if !strings.Contains(ve.Expected, "generate_204") || !strings.Contains(ve.Expected, "off") {
				t.Errorf("expected %q: want an example and off", ve.Expected)
			}
		})
	}
}

// FuzzParseCheck: no panic; what parses prints as a value that parses to
// the same Check, with a success status and an http(s) URL.
func FuzzParseCheck(f *testing.F) {
	for _, s := range []string{"http://connectivitycheck.gstatic.com/generate_204 204", "off", "https://a/ 200", "http://a:0/", "http://[::1]:80/x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCheck(s)
		if err != nil || !c.On() {
			return
		}
		if c.Status < 200 || c.Status > 299 {
			t.Fatalf("%q: status %d", s, c.Status)
		}
		if !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://") {
			t.Fatalf("%q: URL %q", s, c.URL)
		}
		again, err := ParseCheck(c.String())
		if err != nil || again != c {
			t.Fatalf("%q -> %q -> %+v, %v", s, c.String(), again, err)
		}
	})
}
