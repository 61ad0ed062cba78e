// Package clock tells whether the system clock is fit for WireGuard
// handshakes. A handshake initiation carries a timestamp (TAI64N) that the
// peer rejects unless it is later than the last one it accepted from us; a
// board without a real-time clock boots with the time of its last shutdown,
// of its image, or 1970, and its handshakes fail silently until NTP has set
// the clock. Check says when that may be the case, so that the gateway can
// say so and not blame the endpoint for it.
package clock

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// Kernel is what the kernel says about its clock discipline (adjtimex(2)).
type Kernel struct {
	MaxError time.Duration // maxerror: the kernel's bound on the clock's error
	Unsync   bool          // STA_UNSYNC in status (not used to decide: see Check)
}

// Source is where Check reads the time and the kernel's view of it. System
// is the real one; tests pass a fake.
type Source interface {
	Now() time.Time
	Kernel() (Kernel, error)
}

// UnsyncedMaxError is the maximum error at and above which the clock counts
// as not synchronised: the kernel's NTP_PHASE_LIMIT, where it caps maxerror
// while nothing disciplines the clock, and systemd's test (timedatectl's
// "System clock synchronized").
const UnsyncedMaxError = 16 * time.Second

// State is the clock's fitness, for status and the log.
type State struct {
	Synced      bool      `json:"synced"`       // the kernel's maximum error is below UnsyncedMaxError
	BeforeBuild bool      `json:"before_build"` // the time is before the binary was built
	Reason      string    `json:"reason,omitempty"`
	Now         time.Time `json:"now"`
	Build       time.Time `json:"build_time"` // the bound BeforeBuild compares with
	MaxError    float64   `json:"max_error_seconds"`
	Error       string    `json:"error,omitempty"` // the kernel could not be asked; Synced is then assumed
}

// OK reports whether the clock is fit: synchronised and not before the build.
func (s State) OK() bool { return s.Synced && !s.BeforeBuild }

// Check reads src once and judges the clock against build (from BuildTime).
//
// Synchronised means a maximum error below 16 s, as systemd judges it; the
// STA_UNSYNC bit alone is not enough, as chrony leaves it set when it keeps
// the kernel from writing the RTC. When the kernel cannot be asked, the clock
// counts as synchronised (and Error says why): a guess must not stop the
// gateway from healing.
func Check(src Source, build time.Time) State {
	s := State{Now: src.Now(), Build: build, Synced: true}
	k, err := src.Kernel()
	if err != nil {
		s.Error = err.Error()
	} else {
		s.MaxError = k.MaxError.Seconds()
		s.Synced = k.MaxError < UnsyncedMaxError
	}
	s.BeforeBuild = !build.IsZero() && s.Now.Before(build)
	var why []string
	if !s.Synced {
		why = append(why, "clock not synchronised")
	}
	if s.BeforeBuild {
		why = append(why, fmt.Sprintf("the time (%s) is before this build (%s)",
			s.Now.UTC().Format(time.RFC3339), build.UTC().Format(time.RFC3339)))
	}
	if len(why) > 0 {
		s.Reason = strings.Join(why, " and ") + ": handshakes may be rejected until NTP has synced"
	}
	return s
}

// buildStamp is the build time in RFC 3339, for builds without VCS
// information: go build -ldflags "-X github.com/fobgw/fobgw/clock.buildStamp=$(date -u +%FT%TZ)".
var buildStamp string

// sourceFloor is when this file was written: no build of it is older, so it
// is the bound when the binary carries no build time.
var sourceFloor = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// BuildTime is the time the binary was built, as far as it can tell: the
// -ldflags stamp (buildStamp) if set, else the VCS commit time that go build
// records (vcs.time), else the date this package was written.
func BuildTime() time.Time {
	info, _ := debug.ReadBuildInfo()
	return buildTime(info, buildStamp)
}

func buildTime(info *debug.BuildInfo, stamp string) time.Time {
	if t, err := time.Parse(time.RFC3339, stamp); err == nil && t.After(sourceFloor) {
		return t
	}
	if info != nil {
		for _, s := range info.Settings {
			if s.Key != "vcs.time" {
				continue
			}
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil && t.After(sourceFloor) {
				return t
			}
		}
	}
	return sourceFloor
}
