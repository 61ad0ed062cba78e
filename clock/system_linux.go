package clock

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// System is the machine's clock: time.Now and adjtimex(2) in read-only mode
// (modes 0, which needs no privilege).
func System() Source { return system{} }

type system struct{}

func (system) Now() time.Time { return time.Now() }

func (system) Kernel() (Kernel, error) {
	var tx unix.Timex
	if _, err := unix.Adjtimex(&tx); err != nil {
		return Kernel{}, fmt.Errorf("adjtimex: %w", err)
	}
	return Kernel{
		MaxError: time.Duration(tx.Maxerror) * time.Microsecond,
		Unsync:   tx.Status&unix.STA_UNSYNC != 0,
	}, nil
}
