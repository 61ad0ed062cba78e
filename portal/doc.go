// Package portal is what fobgw does about captive portals (the login page a
// hotel, train or dorm network puts in front of the internet): it tells
// whether one is there, keeps the state of one device's window to log in,
// and guards the status page's button that opens that window.
//
//   - Detection (Detector, Watcher): an HTTP request from the gateway's own
//     WAN path for a check URL that answers a known status (Check; by
//     default the one phones and browsers ask, answering 204 with an empty
//     body). The expected answer means no portal; a redirect or any other
//     answer means a portal, whose page is the redirect's target or the
//     check URL itself; no answer means nothing is known (the network is
//     down). The Watcher checks only while the tunnel has no handshake: at
//     start, then every Interval while it stays down, so that a portal whose
//     session expires a day later is found again the same way.
//   - The window (Window): one device (Device: a LAN address or a MAC)
//     that goes out directly, without the tunnel, for a limited time, opened
//     only by the owner's act and closed by the owner, by its time limit, or
//     by the first handshake after it opened. The Window is the state; a
//     Marker given to it (the gateway's nftables table and DNS forwarder)
//     makes it true on the system.
//   - The button (Guard): a POST from the status page that opens the window
//     for the device that asks is allowed only from the page itself (same
//     origin, a token the page carries) and only for the requester's own
//     address.
//
// The package knows HTTP and nothing of routing, nftables or WireGuard: the
// gateway gives it an HTTP client that leaves through the main table
// (NewClient), tells it whether the tunnel is up and when the latest
// handshake was, and marks what the Window says.
package portal
