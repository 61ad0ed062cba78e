package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestFromBuildInfo(t *testing.T) {
	wg := &debug.Module{Path: WireGuardModule, Version: "v0.0.0-20260522210424-ecfc5a8d5446"}
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/fobgw/fobgw", Version: "v0.0.0-20261128073956-ee0f5f5b9967"},
		Deps:      []*debug.Module{{Path: "github.com/miekg/dns", Version: "v1.1.73"}, wg},
		Settings: []debug.BuildSetting{
			{Key: "GOARCH", Value: "arm"}, {Key: "GOOS", Value: "linux"}, {Key: "GOARM", Value: "7"},
			{Key: "vcs.revision", Value: "ee0f5f5b9967ecd9e02d8945ce889b4c0944c58a"},
			{Key: "vcs.time", Value: "2026-11-28T07:39:56Z"},
			{Key: "vcs.modified", Value: "false"},
		},
	}
	patched := *stamped
	patched.Deps = []*debug.Module{{Path: WireGuardModule, Version: wg.Version,
		Replace: &debug.Module{Path: "./third_party/wireguard"}}}
	bare := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/fobgw/fobgw", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "GOARCH", Value: "amd64"}, {Key: "GOOS", Value: "linux"}}}
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		want Info
	}{
		{"stamped", stamped, Info{Version: "v0.0.0-20261128073956-ee0f5f5b9967", Revision: "ee0f5f5b9967ecd9e02d8945ce889b4c0944c58a",
			Time: "2026-11-28T07:39:56Z", Modified: "false", GoVersion: "go1.26.8", Platform: "linux/arm GOARM=7",
			WireGuard: "v0.0.0-20260522210424-ecfc5a8d5446"}},
		{"patched wireguard-go", &patched, Info{Version: "v0.0.0-20261128073956-ee0f5f5b9967", Revision: "ee0f5f5b9967ecd9e02d8945ce889b4c0944c58a",
			Time: "2026-11-28T07:39:56Z", Modified: "false", GoVersion: "go1.26.8", Platform: "linux/arm GOARM=7",
			WireGuard: "v0.0.0-20260522210424-ecfc5a8d5446 (patched)"}},
		{"no VCS, no wireguard-go", bare, Info{Version: "(devel)", Revision: Unknown, Time: Unknown, Modified: Unknown,
			GoVersion: "go1.26.8", Platform: "linux/amd64", WireGuard: Unknown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FromBuildInfo(tt.bi); got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	in := Info{Version: "v1.2.3", Revision: "abc", Time: "2026-11-28T07:39:56Z", Modified: "true",
		GoVersion: "go1.26.8", Platform: "linux/arm64", WireGuard: "v0.0.1 (patched)"}
	var b strings.Builder
	if err := in.Write(&b); err != nil {
		t.Fatal(err)
	}
	want := `fobgw        v1.2.3
revision     abc
time         2026-11-28T07:39:56Z
modified     true
wireguard-go v0.0.1 (patched)
go           go1.26.8
platform     linux/arm64
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestCollector(t *testing.T) {
	in := Info{Version: "v1.2.3", Revision: "abc", GoVersion: "go1.26.8", WireGuard: "v0.0.1 (patched)"}
	reg := prometheus.NewRegistry()
	if err := reg.Register(Collector(in)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || mfs[0].GetName() != "fobgw_build_info" || len(mfs[0].Metric) != 1 {
		t.Fatalf("got %v, want one fobgw_build_info series", mfs)
	}
	m := mfs[0].Metric[0]
	if v := m.GetGauge().GetValue(); v != 1 {
		t.Errorf("value %v, want 1", v)
	}
	got := map[string]string{}
	for _, l := range m.Label {
		got[l.GetName()] = l.GetValue()
	}
	want := map[string]string{"version": "v1.2.3", "revision": "abc", "goversion": "go1.26.8", "wireguard": "v0.0.1 (patched)"}
	if len(got) != len(want) {
		t.Errorf("labels %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[k], v)
		}
	}
}
