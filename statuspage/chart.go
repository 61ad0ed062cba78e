package statuspage

import (
	"math"
	"strconv"
	"time"
)

// The chart's geometry, in SVG user units: a 360x170 canvas (it scales to
// the screen's width), the plot inside the margins.
const (
	chartW, chartH = 360, 170
	plotL, plotR   = 56, 352
	plotT, plotB   = 10, 140
)

// chart is the throughput chart as the template draws it.
type chart struct {
	W, H        int
	In, Out     string // path data of the two lines, "" when there is nothing to draw
	Away        []span // stretches when the LAN was not at home
	YTicks      []tick
	XTicks      []tick
	PlotL       int
	PlotR       int
	PlotT       int
	PlotB       int
	PlotH       int
	Empty       bool   // fewer than two samples: nothing to draw yet
	InNow       string // the latest rates, for the legend
	OutNow      string
	Points      int // rates drawn
	WindowLabel string
}

type span struct{ X, W float64 }

type tick struct {
	Pos    float64 // x or y in user units
	Label  string
	Anchor string // text-anchor of an x label: the last one ends at the plot's edge
}

// niceCeil is the smallest 1, 2 or 5 times a power of ten at or above v.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// newChart draws rates (oldest first) over the Window ending at now.
func newChart(rates []Rate, now time.Time) chart {
	c := chart{W: chartW, H: chartH, PlotL: plotL, PlotR: plotR, PlotT: plotT, PlotB: plotB, PlotH: plotB - plotT,
		Empty: len(rates) == 0, Points: len(rates), WindowLabel: humanDuration(Window)}
	maxRate := 0.0
	for _, r := range rates {
		maxRate = max(maxRate, r.In, r.Out)
	}
	top := niceCeil(max(maxRate, 8000)) // at least 8 kbit/s, so that keepalives do not fill the chart
	x := func(t time.Time) float64 {
		f := 1 - float64(now.Sub(t))/float64(Window)
		return plotL + min(max(f, 0), 1)*(plotR-plotL)
	}
	y := func(r float64) float64 { return plotB - r/top*(plotB-plotT) }
	c.In = path(rates, x, y, func(r Rate) float64 { return r.In })
	c.Out = path(rates, x, y, func(r Rate) float64 { return r.Out })
	for i := 0; i < len(rates); {
		if rates[i].Home {
			i++
			continue
		}
		j := i
		for j+1 < len(rates) && !rates[j+1].Home {
			j++
		}
		// From the sample before the first one away (or the first) to the last one away.
		x0 := x(rates[i].T.Add(-time.Second))
		if i > 0 {
			x0 = x(rates[i-1].T)
		}
		c.Away = append(c.Away, span{X: x0, W: max(x(rates[j].T)-x0, 1)})
		i = j + 1
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.YTicks = append(c.YTicks, tick{Pos: y(f * top), Label: bitRate(f * top)})
	}
	for m := 15; m >= 0; m -= 5 {
		tk := tick{Pos: x(now.Add(-time.Duration(m) * time.Minute)), Label: "now", Anchor: "end"}
		if m > 0 {
			tk.Label, tk.Anchor = "−"+strconv.Itoa(m)+" min", "middle"
		}
		c.XTicks = append(c.XTicks, tk)
	}
	if n := len(rates); n > 0 {
		c.InNow, c.OutNow = bitRate(rates[n-1].In), bitRate(rates[n-1].Out)
	}
	return c
}

// path is SVG path data through the values of rates, a new subpath after
// every break.
func path(rates []Rate, x func(time.Time) float64, y func(float64) float64, v func(Rate) float64) string {
	if len(rates) == 0 {
		return ""
	}
	b := make([]byte, 0, len(rates)*16)
	for i, r := range rates {
		cmd := byte('L')
		if i == 0 || r.Break {
			cmd = 'M'
		}
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, cmd)
		b = strconv.AppendFloat(b, x(r.T), 'f', 1, 64)
		b = append(b, ' ')
		b = strconv.AppendFloat(b, y(v(r)), 'f', 1, 64)
	}
	return string(b)
}
