package mssclamp

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzClamp checks the invariants of Clamp on arbitrary input against the
// reference reading in ref_test.go: no panic, length unchanged, only MSS
// values and the TCP checksum may change, an MSS never rises and is set to
// exactly the limit, a valid checksum stays valid, a second Clamp changes
// nothing, Clamp changes the packet exactly when the reference says so, and
// plainClamp (plain_test.go) gives the same bytes.
func FuzzClamp(f *testing.F) {
	for _, tc := range clampCases() {
		f.Add(tc.pkt, tc.mtu)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, mtu int) {
		before := bytes.Clone(pkt)
		res := classify(bytes.Clone(pkt), mtu)
		changed := Clamp(pkt, mtu)
		if len(pkt) != len(before) {
			t.Fatalf("length changed from %d to %d", len(before), len(pkt))
		}
		if changed == bytes.Equal(pkt, before) {
			t.Fatalf("Clamp = %v but packet changed = %v", changed, !bytes.Equal(pkt, before))
		}
		if changed != (res == clamped) {
			t.Fatalf("Clamp = %v but classify = %v", changed, res)
		}
		if fastPass(before) && res != passed {
			t.Fatalf("fastPass skips a packet that classify finds %v", res)
		}
		if want := refClampable(before, mtu); changed != want {
			t.Fatalf("Clamp = %v, reference wants %v", changed, want)
		}
		if plain := bytes.Clone(before); plainClamp(plain, mtu) != changed || !bytes.Equal(plain, pkt) {
			t.Fatalf("plainClamp (the benchmarks' yardstick) differs from Clamp:\n got %x\nwant %x", plain, pkt)
		}
		if !changed {
			return
		}
		r, _ := refParse(before)
		allowed := map[int]bool{r.off + 16: true, r.off + 17: true}
		limit := mtu - 40
		if r.v6 {
			limit = mtu - 60
		}
		for _, at := range r.mss {
			allowed[at], allowed[at+1] = true, true
			old, got := int(binary.BigEndian.Uint16(before[at:])), int(binary.BigEndian.Uint16(pkt[at:]))
			if want := min(old, limit); got != want {
				t.Fatalf("MSS at %d: %d became %d, want %d (limit %d)", at, old, got, want, limit)
			}
		}
		for i := range pkt {
			if pkt[i] != before[i] && !allowed[i] {
				t.Fatalf("byte %d changed from %#x to %#x: not an MSS value or the checksum", i, before[i], pkt[i])
			}
		}
		if refChecksumOK(before, r) && !refChecksumOK(pkt, r) {
			t.Fatalf("valid TCP checksum became invalid")
		}
		if Clamp(pkt, mtu) {
			t.Fatalf("second Clamp changed the packet again")
		}
	})
}
