package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/fobgw/fobgw/selfbench"
)

// cmdBench measures fobgw's data path on this machine, with no privileges: see selfbench.
func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	seconds := fs.Float64("seconds", 5, "`N` seconds for each of the four measurements")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !(*seconds > 0 && *seconds <= 3600) {
		return &usageError{msg: fmt.Sprintf("-seconds %g: give a number of seconds from above 0 to 3600", *seconds)}
	}
	// The memory limit `fobgw run` would set here: wireguard-go sizes its buffer pool from it.
	applyMemoryLimit(os.Getenv, cgroupMemoryLimit("/"))
	applyGCPercent(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := selfbench.Run(ctx, selfbench.Config{Seconds: *seconds})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, res)
	}
	return res.WriteText(stdout)
}
