package portal

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Check is what the detector asks and the answer it must get: a GET of URL
// answered with Status (and, for 204 No Content, an empty body). The zero
// Check is off: nothing is checked.
type Check struct {
	URL    string
	Status int
}

// DefaultCheck is the check that Android phones and Chrome make themselves:
// the same URL the LAN's own devices use to find a portal, which portals
// therefore take care to intercept.
var DefaultCheck = Check{URL: "http://connectivitycheck.gstatic.com/generate_204", Status: 204}

// DefaultStatus is the status a check URL must answer when the value names
// none.
const DefaultStatus = 204

// On reports whether c checks anything.
func (c Check) On() bool { return c.URL != "" }

// String is c in the syntax ParseCheck reads.
func (c Check) String() string {
	if !c.On() {
		return "off"
	}
	return c.URL + " " + strconv.Itoa(c.Status)
}

// ValueError is a bad configuration value, in the two parts that a
// configuration error names: what is wrong and what is expected. The
// configuration loader adds the file, the line and the key.
type ValueError struct {
	Problem  string
	Expected string
}

func (e *ValueError) Error() string { return e.Problem + "; " + e.Expected }

const checkExpected = "a check URL and the status it must answer, e.g. " +
	"http://connectivitycheck.gstatic.com/generate_204 204 (the default), " +
	"or off to check nothing"

// ParseCheck reads the value of the PortalCheck key:
//
//	URL [STATUS]   an absolute http:// or https:// URL with a host, no user
//	               name or fragment, and the 2xx status it answers (default
//	               204, with an empty body); a redirect is what a portal does,
//	               so 3xx is refused
//	off            no detection
//
// An error is a *ValueError.
func ParseCheck(v string) (Check, error) {
	fields := strings.Fields(v)
	bad := func(format string, args ...any) (Check, error) {
		return Check{}, &ValueError{Problem: fmt.Sprintf(format, args...), Expected: checkExpected}
	}
	switch {
	case len(fields) == 0:
		return bad("empty value")
	case len(fields) == 1 && strings.EqualFold(fields[0], "off"):
		return Check{}, nil
	case len(fields) > 2:
		return bad("%q has %d words, want a URL and at most a status", v, len(fields))
	}
	u, err := url.Parse(fields[0])
	switch {
	case err != nil:
		return bad("%q is not a URL", fields[0])
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("%q is not an http:// or https:// URL", fields[0])
	case u.Host == "" || u.Hostname() == "":
		return bad("%q has no host", fields[0])
	case u.User != nil:
		return bad("%q holds a user name", fields[0])
	case u.Fragment != "" || strings.Contains(fields[0], "#"):
		return bad("%q has a fragment (#...)", fields[0])
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("%q has a bad port", fields[0])
		}
	}
	c := Check{URL: u.String(), Status: DefaultStatus}
	if len(fields) == 2 {
		n, err := strconv.Atoi(fields[1])
		if err != nil || n < 200 || n > 299 {
			return bad("status %q is not a success status (200 to 299); a redirect or an error is what a portal answers", fields[1])
		}
		c.Status = n
	}
	return c, nil
}
