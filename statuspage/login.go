package statuspage

import (
	"net/http"
	"time"
)

// LoginPath is where the page's captive-portal button posts its form.
const LoginPath = "/portal/open"

// Portal is the captive portal as the gateway sees it, for the page.
type Portal struct {
	Detected bool      `json:"detected"`         // a captive portal wants a login now
	URL      string    `json:"url,omitempty"`    // its page, as the check found it (from the network: escaped)
	Since    time.Time `json:"since,omitzero"`   // when it was first seen
	Window   bool      `json:"window"`           // a window is open for one device
	Device   string    `json:"device,omitempty"` // the device whose window is open, or whose window closed last
	Until    time.Time `json:"until,omitzero"`   // the open window's end
	// Closed and Reason: when and why the last window closed (handshake,
	// timeout, owner), with Window false.
	Closed time.Time `json:"closed,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// Login is the button "log in to this network from this device", shown
// while Snapshot.Portal is detected: a form POST to LoginPath, without
// script, that opens the window for the device that sends it. The gateway
// implements it; the page only shows the button and passes the POST on.
type Login interface {
	// Token is the value of the form's field TokenField for the page
	// requested by r; "" shows no button (no portal, or r not on the LAN).
	Token(r *http.Request) string
	// Open opens the window for the sender of r, the button's POST, or
	// says why not; it decides, from r alone, whether the POST comes
	// from the page (and not from a page elsewhere on the web).
	Open(r *http.Request) error
}

// TokenField is the form field that carries Login's token.
const TokenField = "token"

// serveLogin answers the button's POST: on success 303 back to the page,
// otherwise 403 with the reason, and nothing opened.
func (p *Page) serveLogin(w http.ResponseWriter, r *http.Request) {
	if p.login == nil {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "the button posts its form", http.StatusMethodNotAllowed)
		return
	}
	if err := p.login.Open(r); err != nil {
		http.Error(w, "no window was opened: "+err.Error(), http.StatusForbidden)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
