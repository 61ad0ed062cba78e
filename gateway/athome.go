package gateway

import (
	"strconv"
	"time"

	"github.com/fobgw/fobgw/health"
)

// The "at home" verdict, computed here only: `fobgw status` and its JSON
// (at_home, away_reason), the status page and the lab's tests all read it
// from Status.

// homeVerdict says whether the LAN is at home, as of s.Time: the tunnel is
// up, a probe through it has been answered and none is missing now, and the
// LAN path, when probed, is not broken. When it is not, reason says why, in
// a sentence for a person.
func homeVerdict(s *Status) (atHome bool, reason string) {
	if why := portalAway(s); why != "" {
		return false, why
	}
	switch {
	case s.LastHandshake.IsZero():
		return false, "No handshake with the home router yet."
	case !s.TunnelUp:
		return false, "The tunnel is down: the last handshake was " + s.Time.Sub(s.LastHandshake).Round(time.Second).String() + " ago."
	case s.LastProbeOK.IsZero():
		return false, "The tunnel is up; no probe through it has been answered yet."
	case s.ProbeMisses > 0:
		return false, "The tunnel is up, but the probes through it go unanswered (" + strconv.Itoa(s.ProbeMisses) + " in a row)."
	}
	if why := lanPathBroken(s.LANPath); why != "" {
		return false, "The gateway reaches home, but the LAN does not: " + why + "."
	}
	return true, ""
}

// lanPathBroken is the LAN path's reason when its last probe went
// unanswered, "" when it was answered or none was sent.
func lanPathBroken(l *health.LANPathStatus) string {
	if l == nil || l.Probes == 0 || l.OK {
		return ""
	}
	return l.Reason
}
