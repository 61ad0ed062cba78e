package clock

import (
	"errors"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// fakeSource is a clock whose time and kernel state the test sets.
type fakeSource struct {
	now    time.Time
	kernel Kernel
	err    error
}

func (f fakeSource) Now() time.Time          { return f.now }
func (f fakeSource) Kernel() (Kernel, error) { return f.kernel, f.err }

func TestCheck(t *testing.T) {
	build := time.Date(2026, time.November, 20, 12, 0, 0, 0, time.UTC)
	later := build.Add(72 * time.Hour)
	epoch := time.Unix(5, 0) // a board without RTC, just booted
	synced := Kernel{MaxError: 350 * time.Millisecond}
	unsynced := Kernel{MaxError: 16 * time.Second, Unsync: true}
	for _, tc := range []struct {
		name                string
		src                 fakeSource
		synced, beforeBuild bool
		reason              []string // each in Reason; none: Reason empty
	}{
		{"fine", fakeSource{now: later, kernel: synced}, true, false, nil},
		{"unsynchronised", fakeSource{now: later, kernel: unsynced}, false, false,
			[]string{"clock not synchronised: handshakes may be rejected until NTP has synced"}},
		{"max error just below the limit", fakeSource{now: later, kernel: Kernel{MaxError: UnsyncedMaxError - time.Microsecond}}, true, false, nil},
		// chrony without rtcsync keeps STA_UNSYNC set on a synchronised clock.
		{"STA_UNSYNC alone", fakeSource{now: later, kernel: Kernel{MaxError: time.Second, Unsync: true}}, true, false, nil},
		{"before the build", fakeSource{now: epoch, kernel: synced}, true, true,
			[]string{"the time (1970-01-01T00:00:05Z) is before this build (2026-11-20T12:00:00Z): handshakes may be rejected until NTP has synced"}},
		{"both", fakeSource{now: epoch, kernel: unsynced}, false, true,
			[]string{"clock not synchronised and the time (1970-01-01T00:00:05Z) is before this build", "handshakes may be rejected until NTP has synced"}},
		{"kernel unknown", fakeSource{now: later, err: errors.New("adjtimex: operation not permitted")}, true, false, nil},
		{"kernel unknown, before the build", fakeSource{now: epoch, err: errors.New("adjtimex: operation not permitted")}, true, true,
			[]string{"before this build"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Check(tc.src, build)
			if s.Synced != tc.synced || s.BeforeBuild != tc.beforeBuild {
				t.Errorf("Check = synced %v, before build %v; want %v, %v", s.Synced, s.BeforeBuild, tc.synced, tc.beforeBuild)
			}
			if s.OK() != (tc.synced && !tc.beforeBuild) {
				t.Errorf("OK = %v with synced %v, before build %v", s.OK(), s.Synced, s.BeforeBuild)
			}
			if len(tc.reason) == 0 && s.Reason != "" {
				t.Errorf("Reason = %q, want none", s.Reason)
			}
			for _, r := range tc.reason {
				if !strings.Contains(s.Reason, r) {
					t.Errorf("Reason = %q, want it to say %q", s.Reason, r)
				}
			}
			if (tc.src.err != nil) != (s.Error != "") {
				t.Errorf("Error = %q with a kernel error %v", s.Error, tc.src.err)
			}
			if !s.Now.Equal(tc.src.now) || !s.Build.Equal(build) || s.MaxError != tc.src.kernel.MaxError.Seconds() {
				t.Errorf("State carries now %v, build %v, max error %v; want %v, %v, %v", s.Now, s.Build, s.MaxError, tc.src.now, build, tc.src.kernel.MaxError.Seconds())
			}
		})
	}
}

func TestBuildTime(t *testing.T) {
	vcs := func(v string) *debug.BuildInfo {
		return &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ee0f5f5"}, {Key: "vcs.time", Value: v}}}
	}
	for _, tc := range []struct {
		name  string
		info  *debug.BuildInfo
		stamp string
		want  time.Time
	}{
		{"vcs.time", vcs("2026-11-27T10:11:12Z"), "", time.Date(2026, 11, 27, 10, 11, 12, 0, time.UTC)},
		{"stamp wins", vcs("2026-11-27T10:11:12Z"), "2026-11-28T07:00:00Z", time.Date(2026, 11, 28, 7, 0, 0, 0, time.UTC)},
		{"bad stamp", vcs("2026-11-27T10:11:12Z"), "yesterday", time.Date(2026, 11, 27, 10, 11, 12, 0, time.UTC)},
		{"nothing", &debug.BuildInfo{}, "", sourceFloor},
		{"no build info", nil, "", sourceFloor},
		{"bad vcs.time", vcs("2026-13-01"), "", sourceFloor},
		{"older than this code", vcs("2019-01-01T00:00:00Z"), "", sourceFloor},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := buildTime(tc.info, tc.stamp); !got.Equal(tc.want) {
				t.Errorf("buildTime = %v, want %v", got, tc.want)
			}
		})
	}
	// The test binary's own: never before this code was written.
	if got := BuildTime(); got.Before(sourceFloor) {
		t.Errorf("BuildTime = %v, before %v", got, sourceFloor)
	}
}

// TestSystem reads the real clock: adjtimex in read-only mode needs no privilege.
func TestSystem(t *testing.T) {
	src := System()
	k, err := src.Kernel()
	if err != nil {
		t.Fatalf("adjtimex: %v", err)
	}
	if k.MaxError < 0 {
		t.Errorf("max error %v", k.MaxError)
	}
	if d := time.Since(src.Now()); d < 0 || d > time.Second {
		t.Errorf("Now is %v off time.Now", d)
	}
	s := Check(src, BuildTime())
	t.Logf("this machine: %+v (STA_UNSYNC %v)", s, k.Unsync)
}
