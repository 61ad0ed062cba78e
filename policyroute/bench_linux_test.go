package policyroute

import (
	"testing"
)

// BenchmarkRepair measures one periodic Repair on the story's state: without
// drift (two dumps, two sysctl reads) and with its four routes flushed each round.
func BenchmarkRepair(b *testing.B) {
	b.Run("no drift", func(b *testing.B) {
		w := newWorld(b)
		r := w.router(b, storyConfig())
		if err := r.Apply(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if n, err := r.Repair(); n != 0 || err != nil {
				b.Fatalf("Repair = %d, %v", n, err)
			}
		}
	})
	b.Run("routes flushed", func(b *testing.B) {
		w := newWorld(b)
		r := w.router(b, storyConfig())
		if err := r.Apply(); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			delOwned(b, w, func(s string) bool { return s != "rule" })
			b.StartTimer()
			if n, err := r.Repair(); n != 4 || err != nil {
				b.Fatalf("Repair = %d, %v; want 4 repairs", n, err)
			}
		}
	})
}
