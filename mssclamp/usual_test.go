package mssclamp

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// TestUsualLists checks the shortcut of classify for usualLists against the
// walk of clampList: for random option values, and with one random byte of
// each list changed, both give the same result and the same bytes, and the
// unchanged patterns match with their MSS the first and only option.
func TestUsualLists(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range usualLists {
		fields := strings.Fields(p.src)
		for range 2000 {
			opts := make([]byte, len(fields))
			for j, f := range fields {
				if f == ".." {
					opts[j] = byte(rng.Uint32())
				} else {
					b, _ := strconv.ParseUint(f, 16, 8)
					opts[j] = byte(b)
				}
			}
			if rng.IntN(4) == 0 {
				opts[2], opts[3] = 0x05, 0x64 // MSS 1380: at the limit
			}
			if !isUsualList(opts) {
				t.Fatalf("%q: %x does not match", p.src, opts)
			}
			compareWithWalk(t, opts)
			// Change one byte, fixed or not: the result must still be the walk's.
			mutated := bytes.Clone(opts)
			mutated[rng.IntN(len(mutated))] = byte(rng.Uint32())
			compareWithWalk(t, mutated)
		}
	}
}

// compareWithWalk clamps a v4 SYN carrying opts through classify and through
// clampList alone, and fails if they differ.
func compareWithWalk(t *testing.T, opts []byte) {
	t.Helper()
	pkt := pkt4(nil, tcpHeader(flagSYN, opts))
	got, want := bytes.Clone(pkt), bytes.Clone(pkt)
	rGot := classify(got, 1420)
	seg := want[ipv4MinLen:]
	rWant := clampList(seg, seg[tcpMinLen:tcpMinLen+len(opts)], 1420-ipv4Overhead)
	if rGot != rWant || !bytes.Equal(got, want) {
		t.Fatalf("options %x: classify = %v, %x; walk = %v, %x", opts, rGot, got, rWant, want)
	}
	if r, _ := refParse(pkt); rGot == clamped && (len(r.mss) != 1 || r.mss[0] != ipv4MinLen+tcpMinLen+2) && isUsualList(opts) {
		t.Fatalf("options %x match a usual list but the reference finds MSS at %v", opts, r.mss)
	}
}

// isUsualList reports whether opts matches one of usualLists.
func isUsualList(opts []byte) bool {
	for i := range usualLists {
		if usualLists[i].matches(opts) {
			return true
		}
	}
	return false
}
