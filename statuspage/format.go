package statuspage

import (
	"fmt"
	"strconv"
	"time"
)

// humanDuration says d the way the page does: "40 s", "5 min", "2 h 13 min",
// "3 d 4 h".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min", s/60)
	case s < 86400:
		if m := s % 3600 / 60; m != 0 {
			return fmt.Sprintf("%d h %d min", s/3600, m)
		}
		return fmt.Sprintf("%d h", s/3600)
	}
	if h := s % 86400 / 3600; h != 0 {
		return fmt.Sprintf("%d d %d h", s/86400, h)
	}
	return fmt.Sprintf("%d d", s/86400)
}

// clock says t in now's location: "14:02" on now's day, "27 Nov 14:02"
// before.
func clock(t, now time.Time) string {
	t = t.In(now.Location())
	y, m, d := t.Date()
	ny, nm, nd := now.Date()
	if y == ny && m == nm && d == nd {
		return t.Format("15:04")
	}
	return t.Format("2 Jan 15:04")
}

// bytesIEC says n bytes as wg(8) does: "1.20 GiB".
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= unit
		if v < unit || u == "PiB" {
			return fmt.Sprintf("%.2f %s", v, u)
		}
	}
	panic("unreachable")
}

// bitRate says r bits per second: "0 bit/s", "850 bit/s", "12.3 Mbit/s".
func bitRate(r float64) string {
	if r < 1000 {
		return fmt.Sprintf("%.0f bit/s", r)
	}
	for _, u := range []string{"kbit/s", "Mbit/s", "Gbit/s"} {
		r /= 1000
		if r < 1000 || u == "Gbit/s" {
			if r < 10 {
				return strconv.FormatFloat(r, 'f', 1, 64) + " " + u
			}
			return strconv.FormatFloat(r, 'f', 0, 64) + " " + u
		}
	}
	panic("unreachable")
}
