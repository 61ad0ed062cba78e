package portal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// State is what a check found.
type State uint8

const (
	// Unknown: no answer (the network is down, the name did not resolve,
	// the request timed out), or no check yet.
	Unknown State = iota
	// None: the expected answer; no portal in the way.
	None
	// Portal: a redirect or another answer than the expected one; a
	// captive portal wants a login.
	Portal
)

func (s State) String() string {
	switch s {
	case None:
		return "none"
	case Portal:
		return "portal"
	default:
		return "unknown"
	}
}

// MarshalText gives the State's name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a State's name.
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "none":
		*s = None
	case "portal":
		*s = Portal
	case "unknown":
		*s = Unknown
	default:
		return fmt.Errorf("portal state %q: want none, portal or unknown", b)
	}
	return nil
}

// Result is one check's outcome.
type Result struct {
	State State `json:"state"`
	// URL is the portal's page (State Portal): the redirect's target, or
	// the check URL when the portal answered with its page in place of the
	// expected answer (or redirected to something that is no http(s) URL).
	URL string `json:"url,omitempty"`
	// Status is the HTTP status answered; 0 without an answer.
	Status int `json:"status,omitempty"`
	// Error says why there was no answer (State Unknown).
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

const (
	// DefaultTimeout bounds one check, from the name's resolution to the
	// answer's body.
	DefaultTimeout = 10 * time.Second
	// MaxBody is the most of an answer's body a check reads.
	MaxBody = 64 << 10
	// maxURL is the longest redirect target reported as the portal's URL.
	maxURL = 2048
	// userAgent names the check in a portal's log.
	userAgent = "fobgw-portal-check"
)

// Detector makes checks through an HTTP client.
type Detector struct {
	client  http.Client // a copy that follows no redirect
	check   Check
	timeout time.Duration
}

// NewDetector returns a detector that asks check through client (in
// production NewClient's: the gateway's own WAN path). Redirects are never
// followed, whatever client's CheckRedirect says. A timeout of 0 is
// DefaultTimeout.
func NewDetector(client *http.Client, check Check, timeout time.Duration) *Detector {
	d := &Detector{client: *client, check: check, timeout: timeout}
	d.client.CheckRedirect = noRedirect
	if d.timeout <= 0 {
		d.timeout = DefaultTimeout
	}
	return d
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Detect makes one check. It never fails: no answer is a Result with State
// Unknown and its Error.
func (d *Detector) Detect(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	res := d.detect(ctx)
	res.At = time.Now()
	return res
}

func (d *Detector) detect(ctx context.Context) Result {
	if !d.check.On() {
		return Result{State: Unknown, Error: "PortalCheck is off"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.check.URL, nil)
	if err != nil {
		return Result{State: Unknown, Error: err.Error()}
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := d.client.Do(req)
	if err != nil {
		return Result{State: Unknown, Error: noAnswer(err)}
	}
	defer resp.Body.Close()
	res := Result{Status: resp.StatusCode}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		// Read nothing: the redirect is the answer.
		res.State, res.URL = Portal, d.redirectTarget(resp)
		return res
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, MaxBody))
	if err != nil && resp.StatusCode == d.check.Status {
		// The expected status with a body cut short: no answer to trust.
		return Result{State: Unknown, Status: resp.StatusCode, Error: noAnswer(err)}
	}
	if resp.StatusCode == d.check.Status && (d.check.Status != http.StatusNoContent || n == 0) {
		res.State = None
		return res
	}
	res.State, res.URL = Portal, d.check.URL
	return res
}

// redirectTarget is a redirect's Location resolved against the check URL,
// when it is a usable http(s) URL; otherwise the check URL. The target comes
// from the network: it is shown to people, so only a parsed, bounded URL
// goes through.
func (d *Detector) redirectTarget(resp *http.Response) string {
	loc := resp.Header.Get("Location")
	if loc == "" || len(loc) > maxURL {
		return d.check.URL
	}
	base, err := url.Parse(d.check.URL)
	if err != nil {
		return d.check.URL
	}
	u, err := base.Parse(loc)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return d.check.URL
	}
	s := u.String()
	if len(s) > maxURL {
		return d.check.URL
	}
	return s
}

// noAnswer shortens the error of a request that got no answer.
func noAnswer(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}
