package statuspage

import (
	"bytes"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"time"
)

// Page is the status page: an http.Handler serving the HTML page at / and
// the snapshot as JSON at /status.json, read-only: GET and HEAD, anything
// else 405; with a Login, also the button's POST to LoginPath. It writes no
// secret, runs no script and loads nothing else.
type Page struct {
	snapshot func() Snapshot
	sampler  *Sampler
	refresh  time.Duration
	log      *slog.Logger
	login    Login // nil: no button
}

// RefreshInterval is how often the page reloads itself.
const RefreshInterval = 10 * time.Second

// NewPage returns the page for snapshot, charting what sampler holds, with
// login's captive-portal button (nil: none). snapshot is called once a
// request. log may be nil.
func NewPage(snapshot func() Snapshot, sampler *Sampler, log *slog.Logger, login Login) *Page {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Page{snapshot: snapshot, sampler: sampler, refresh: RefreshInterval, log: log, login: login}
}

// securityHeaders allow nothing but the page's own inline style and SVG:
// no script, no frame, no request elsewhere; a form posts only to the page.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	// Not no-referrer: under it a browser sends "Origin: null" with the
	// button's POST, which the gateway cannot tell from another site's.
	// same-origin names the page to itself and to no other site.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if r.URL.Path == LoginPath {
		p.serveLogin(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the status page is read-only: GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	var body []byte
	var ctype string
	switch r.URL.Path {
	case "/":
		var buf bytes.Buffer
		if err := pageTemplate.Execute(&buf, p.view(r)); err != nil {
			p.log.Error("render the status page", "err", err)
			http.Error(w, "the status page failed to render; see fobgw's log", http.StatusInternalServerError)
			return
		}
		body, ctype = buf.Bytes(), "text/html; charset=utf-8"
	case "/status.json":
		s := p.snapshot()
		b, err := json.MarshalIndent(&s, "", "  ")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		body, ctype = append(b, '\n'), "application/json"
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Write(body)
}

// view is what the template shows.
type view struct {
	S        Snapshot
	Refresh  int
	AtHome   bool
	Headline string // "At home" / "Not at home"
	Since    string // "since 14:02 (2 h 13 min)", "" when unknown
	Why      string // why not at home
	Handshake,
	Endpoint,
	Rx, Tx,
	KillSwitch string
	Holding bool
	Updated string
	Chart   chart
	Portal  *portalView // nil: no portal section
}

// portalView is the captive-portal section.
type portalView struct {
	P          Portal
	Since      string // the portal's first sight, "14:02"
	Until      string // the open window's end
	Closed     string // when the last window closed
	Token      string // the button's token; "" shows no button
	LoginPath  string
	TokenField string
}

func (p *Page) view(r *http.Request) view {
	s := p.snapshot()
	now := s.Time
	if now.IsZero() {
		now = time.Now()
	}
	v := view{S: s, Refresh: int(p.refresh / time.Second), AtHome: s.AtHome, Holding: s.Holding(),
		Updated: now.Format("15:04:05")}
	v.Headline = "Not at home"
	if v.AtHome {
		v.Headline = "At home"
	}
	if home, since, ok := p.sampler.State(); ok && home == v.AtHome {
		v.Since = "since " + clock(since, now) + " (" + humanDuration(now.Sub(since)) + ")"
	}
	if !v.AtHome {
		v.Why = s.AwayReason
	}
	v.Handshake = "never"
	if !s.LastHandshake.IsZero() {
		v.Handshake = humanDuration(now.Sub(s.LastHandshake)) + " ago"
	}
	v.Endpoint = s.Endpoint
	if v.Endpoint == "" {
		v.Endpoint = "not resolved yet"
	}
	if s.EndpointName != "" {
		v.Endpoint += " (" + s.EndpointName + ")"
	}
	v.Rx, v.Tx = bytesIEC(s.RxBytes), bytesIEC(s.TxBytes)
	switch {
	case !s.KillSwitch:
		v.KillSwitch = "off: when the tunnel is down, the LAN's traffic leaves through the local ISP"
	case v.Holding:
		v.KillSwitch = "on, holding: the LAN's traffic waits for the tunnel and does not leave through the local ISP"
	default:
		v.KillSwitch = "on: the LAN's traffic leaves only through the tunnel"
	}
	v.Chart = newChart(p.sampler.Rates(nil, now), now)
	if pt := s.Portal; pt != nil && (pt.Detected || pt.Window || !pt.Closed.IsZero()) {
		pv := &portalView{P: *pt, LoginPath: LoginPath, TokenField: TokenField}
		if !pt.Since.IsZero() {
			pv.Since = clock(pt.Since, now)
		}
		if !pt.Until.IsZero() {
			pv.Until = clock(pt.Until, now)
		}
		if !pt.Closed.IsZero() {
			pv.Closed = clock(pt.Closed, now)
		}
		if pt.Detected && !pt.Window && p.login != nil {
			pv.Token = p.login.Token(r)
		}
		v.Portal = pv
	}
	return v
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{"bytes": bytesIEC}).Parse(pageHTML))

const pageHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>{{.Headline}} · fobgw {{.S.Name}}</title>
<style>
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #b42318; --in: #1f6feb; --out: #d97706; --muted: #6b7280; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 12px; max-width: 40rem; }
header { border-radius: 10px; padding: 14px 16px; color: #fff; background: var(--bad); }
header.home { background: var(--ok); }
header h1 { margin: 0; font-size: 1.6rem; }
header p { margin: 4px 0 0; }
section { margin-top: 18px; }
h2 { font-size: 1rem; margin: 0 0 6px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
dl { display: grid; grid-template-columns: minmax(8rem, max-content) 1fr; gap: 4px 14px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 10px system-ui, sans-serif; fill: currentColor; }
.grid { stroke: var(--muted); stroke-opacity: .35; stroke-width: .6; }
.away { fill: var(--bad); fill-opacity: .14; }
.line { fill: none; stroke-width: 1.6; stroke-linejoin: round; stroke-linecap: round; }
.in { stroke: var(--in); } .out { stroke: var(--out); }
.key-in { fill: var(--in); } .key-out { fill: var(--out); }
footer { margin-top: 18px; color: var(--muted); font-size: .85rem; }
</style>
</head>
<body>
<header{{if .AtHome}} class="home"{{end}}>
<h1 id="headline">{{.Headline}}</h1>
{{if .Since}}<p id="since">{{.Since}}</p>{{end}}
{{if .Why}}<p id="why">{{.Why}}</p>{{end}}
</header>

{{with .Portal}}<section id="portal">
<h2>Captive portal</h2>
<dl>
{{if .P.Detected}}<dt>Detected</dt><dd id="portal-state">this network wants a login{{if .Since}} (since {{.Since}}){{end}}: <a id="portal-url" href="{{.P.URL}}">{{.P.URL}}</a></dd>
{{else}}<dt>Portal</dt><dd id="portal-state">none seen now</dd>
{{end}}{{if .P.Window}}<dt>Window</dt><dd id="portal-window">open for {{.P.Device}} until {{.Until}}: that device alone goes out directly to log in; the rest of the LAN stays behind the kill switch. It closes at the first handshake with home.</dd>
{{else if .Closed}}<dt>Window</dt><dd id="portal-window">closed at {{.Closed}} ({{.P.Reason}}), the last was for {{.P.Device}}</dd>
{{end}}</dl>
{{if .Token}}<form method="post" action="{{.LoginPath}}">
<input type="hidden" name="{{.TokenField}}" value="{{.Token}}">
<p><button id="portal-login" type="submit">Log in to this network from this device</button></p>
<p>This device alone then goes out directly, without the tunnel, for up to 10 minutes, to log in at the portal's page; every other device keeps the kill switch.</p>
</form>
{{end}}</section>
{{end}}
<section>
<h2>Throughput, last {{.Chart.WindowLabel}}</h2>
<svg id="chart" viewBox="0 0 {{.Chart.W}} {{.Chart.H}}" role="img" aria-label="Throughput through the tunnel over the last {{.Chart.WindowLabel}}">
{{range .Chart.Away}}<rect class="away" x="{{printf "%.1f" .X}}" y="{{$.Chart.PlotT}}" width="{{printf "%.1f" .W}}" height="{{$.Chart.PlotH}}"/>
{{end}}{{range .Chart.YTicks}}<line class="grid" x1="{{$.Chart.PlotL}}" x2="{{$.Chart.PlotR}}" y1="{{printf "%.1f" .Pos}}" y2="{{printf "%.1f" .Pos}}"/><text x="{{$.Chart.PlotL}}" dx="-4" y="{{printf "%.1f" .Pos}}" dy="3" text-anchor="end">{{.Label}}</text>
{{end}}{{range .Chart.XTicks}}<text x="{{printf "%.1f" .Pos}}" y="{{$.Chart.PlotB}}" dy="13" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}{{if .Chart.Empty}}<text x="204" y="80" text-anchor="middle">collecting samples…</text>
{{else}}<path class="line in" d="{{.Chart.In}}"/>
<path class="line out" d="{{.Chart.Out}}"/>
{{end}}<rect class="key-in" x="{{.Chart.PlotL}}" y="158" width="10" height="4"/><text x="{{.Chart.PlotL}}" dx="14" y="163">in {{.Chart.InNow}}</text>
<rect class="key-out" x="200" y="158" width="10" height="4"/><text x="214" y="163">out {{.Chart.OutNow}}</text>
</svg>
</section>

<section>
<h2>Tunnel</h2>
<dl>
<dt>Last handshake</dt><dd id="handshake">{{.Handshake}}</dd>
<dt>Home router</dt><dd id="endpoint">{{.Endpoint}}</dd>
<dt>Received</dt><dd id="rx">{{.Rx}}</dd>
<dt>Sent</dt><dd id="tx">{{.Tx}}</dd>
</dl>
</section>

<section>
<h2>DNS</h2>
<dl>
<dt>Answers</dt><dd id="dns-answers">{{.S.DNS.Answers}}</dd>
<dt>Cache hits</dt><dd id="dns-cache-hits">{{.S.DNS.CacheHits}}</dd>
<dt>Failures</dt><dd id="dns-failures">{{.S.DNS.Failures}}</dd>
</dl>
</section>

{{with .S.Breakout}}<section>
<h2>Local breakout</h2>
<dl id="breakout">
{{range .Devices}}<dt>{{.Name}}</dt><dd class="bypass">{{if .Seen}}seen{{else}}not seen{{end}}, {{bytes .Bytes}} through the local ISP</dd>
{{end}}<dt>Local addresses</dt><dd id="local-set">{{.LocalSet}}</dd>
<dt>Local DNS answers</dt><dd id="local-answers">{{.LocalAnswers}}</dd>
</dl>
</section>

{{end}}<section>
<h2>Safety</h2>
<dl>
<dt>Kill switch</dt><dd id="killswitch">{{.KillSwitch}}</dd>
<dt>Route repairs</dt><dd id="repairs">{{.S.RouteRepairs}}</dd>
<dt>Endpoint changes</dt><dd id="endpoint-changes">{{.S.EndpointChanges}}</dd>
</dl>
</section>

<footer>fobgw {{.S.Name}} · updated {{.Updated}} · reloads every {{.Refresh}}&nbsp;s</footer>
</body>
</html>
`
