// Package buildinfo says which fobgw this is: the module version, the VCS
// revision and time that the go command stamped into the binary
// (runtime/debug.ReadBuildInfo), the Go version, and the version of
// wireguard-go inside. `fobgw version` prints it and the fobgw_build_info
// gauge carries it, so a running gateway and its binary can be matched
// against `go version -m`.
//
// The go command stamps the VCS fields only when it builds inside a git
// clone with -buildvcs=auto or true (the Makefile passes it; the
// environment of some machines sets GOFLAGS=-buildvcs=false). A git
// worktree has a .git file, not a directory, and is not stamped.
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// WireGuardModule is wireguard-go's module path.
const WireGuardModule = "golang.zx2c4.com/wireguard"

// Unknown stands for a field the binary does not carry.
const Unknown = "unknown"

// Info describes a build. Fields the binary does not carry are Unknown.
type Info struct {
	Version   string // fobgw's module version, e.g. v0.0.0-20261128073956-ee0f5f5b9967(+dirty)
	Revision  string // vcs.revision: the commit
	Time      string // vcs.time: the commit's time, RFC 3339
	Modified  string // vcs.modified: "true" when built from a tree with uncommitted changes
	GoVersion string // e.g. go1.26.8
	Platform  string // GOOS/GOARCH, with GOARM on arm
	// WireGuard is wireguard-go's version as go.mod requires it; when a
	// replace directive swaps in another copy (a patched one), " (patched)"
	// follows.
	WireGuard string
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: Unknown, Revision: Unknown, Time: Unknown, Modified: Unknown,
			GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, WireGuard: Unknown}
	}
	return FromBuildInfo(bi)
}

// FromBuildInfo extracts an Info from bi.
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{
		Version:   orUnknown(bi.Main.Version),
		GoVersion: orUnknown(bi.GoVersion),
		Revision:  Unknown,
		Time:      Unknown,
		Modified:  Unknown,
		WireGuard: Unknown,
	}
	var goos, goarch, goarm string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = orUnknown(s.Value)
		case "vcs.time":
			in.Time = orUnknown(s.Value)
		case "vcs.modified":
			in.Modified = orUnknown(s.Value)
		case "GOOS":
			goos = s.Value
		case "GOARCH":
			goarch = s.Value
		case "GOARM":
			goarm = s.Value
		}
	}
	if goos == "" {
		goos, goarch = runtime.GOOS, runtime.GOARCH
	}
	in.Platform = goos + "/" + goarch
	if goarch == "arm" && goarm != "" {
		in.Platform += " GOARM=" + goarm
	}
	for _, d := range bi.Deps {
		if d.Path != WireGuardModule {
			continue
		}
		in.WireGuard = orUnknown(d.Version)
		if d.Replace != nil {
			in.WireGuard += " (patched)"
		}
	}
	return in
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

// Write prints in as `fobgw version` does: one "field value" line each.
func (in Info) Write(w io.Writer) error {
	var b strings.Builder
	for _, f := range [][2]string{
		{"fobgw", in.Version},
		{"revision", in.Revision},
		{"time", in.Time},
		{"modified", in.Modified},
		{"wireguard-go", in.WireGuard},
		{"go", in.GoVersion},
		{"platform", in.Platform},
	} {
		fmt.Fprintf(&b, "%-13s%s\n", f[0], f[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Collector returns the fobgw_build_info gauge for in: always 1, the build
// in its labels (version, revision, goversion, wireguard), as Prometheus'
// own *_build_info gauges.
func Collector(in Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "fobgw_build_info",
		Help: "Always 1; the labels say which fobgw runs (as `fobgw version`).",
		ConstLabels: prometheus.Labels{
			"version":   in.Version,
			"revision":  in.Revision,
			"goversion": in.GoVersion,
			"wireguard": in.WireGuard,
		},
	})
	g.Set(1)
	return g
}
