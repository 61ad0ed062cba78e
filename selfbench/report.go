package selfbench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// NotASpeed is printed under emulation.
const NotASpeed = "emulated (qemu-user): these figures measure the emulator, they are not a speed"

// WriteText prints r for a person.
func (r *Result) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "fobgw bench: two WireGuard devices in this process (fobgw's wireguard-go, MSS clamp and\n")
	fmt.Fprintf(ew, "path-MTU wrapper), joined over loopback UDP; %s, %d CPUs, %s; ChaCha20-Poly1305: %s\n", r.Arch, r.CPUs, r.Go, r.Cipher)
	fmt.Fprintf(ew, "packets: generated TCP segments of %d bytes, %d in flight per stream; %g s each\n", r.Packet, r.Window, r.Seconds)
	if r.Emulated {
		fmt.Fprintf(ew, "\n*** %s ***\n", NotASpeed)
	}
	fmt.Fprintln(ew)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "streams\tdirection\tMbit/s\tCPU ms per Gbit\tlost packets\t\n")
	for _, run := range r.Runs {
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.0f\t%d\t\n", run.Streams, run.Direction, run.Mbps, run.CPUPerGbit, run.Lost)
	}
	tw.Flush()
	fmt.Fprintf(ew, "\npeak RSS (VmHWM, both ends): %.1f MiB after one stream each way, %.1f MiB after 4\n",
		float64(r.PeakRSSAfter1KiB)/1024, float64(r.PeakRSSKiB)/1024)
	fmt.Fprintf(ew, "\npublished WireGuard figures for the chips of the hAP lite and hAP ac:\n")
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
	for _, f := range r.Published {
		fmt.Fprintf(tw, "  %s\t%s\t%.1f Mbit/s\t%s\n", f.Device, f.SoC, f.Mbps, f.Source)
	}
	tw.Flush()
	fmt.Fprintf(ew, "\n%s\n", Comparable)
	if r.Emulated {
		fmt.Fprintf(ew, "\n*** %s ***\n", NotASpeed)
	}
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
