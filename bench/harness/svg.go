package harness

import (
	"fmt"
	"html"
	"math"
	"strings"
)

// barColors are the percentiles' colours, in Percentiles order.
var barColors = []string{"#4e79a7", "#59a14f", "#f28e2b", "#e15759"}

// LatencySVG draws the fixed-rate latency percentiles of every measured
// system as grouped bars, one panel per protocol. Hand-written SVG, no
// plotting library.
func LatencySVG(res *Results) string {
	var systems []*SystemResult
	for _, s := range res.Systems {
		if s.Measured() {
			systems = append(systems, s)
		}
	}
	const (
		width   = 980
		panelH  = 300
		top     = 56
		left    = 64
		right   = 16
		gap     = 70 // between panels (x labels and the next title)
		bottomX = 40
	)
	height := top + len(Protocols)*(panelH+gap) + bottomX - gap + 20
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n", width, height, width, height)
	w(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	title := "Latency at a fixed " + html.EscapeString(res.Settings["fixed"])
	if res.Smoke {
		title += " (smoke run)"
	}
	w(`<text x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", left, title)
	// Legend.
	lx := left
	for i, p := range Percentiles {
		w(`<rect x="%d" y="32" width="12" height="12" fill="%s"/><text x="%d" y="43" font-size="12">p%s</text>`+"\n", lx, barColors[i%len(barColors)], lx+16, PctKey(p))
		lx += 70
	}
	w(`<text x="%d" y="43" font-size="12" fill="#555">ms, lower is better; measured by fortio at the client</text>`+"\n", lx+10)

	plotW := float64(width - left - right)
	for pi, proto := range Protocols {
		y0 := float64(top + pi*(panelH+gap) + 18) // top of the plot area
		h := float64(panelH - 18)
		w(`<text x="%d" y="%.0f" font-size="14" font-weight="bold">%s</text>`+"\n", left, y0-6, ProtoTitle(proto))
		maxV := 0.0
		for _, s := range systems {
			for _, p := range Percentiles {
				if v, ok := fixedLatency(proto, p)(s); ok {
					maxV = math.Max(maxV, v)
				}
			}
		}
		if maxV == 0 {
			maxV = 1
		}
		step := niceStep(maxV / 5)
		top := math.Ceil(maxV/step) * step
		scale := h / top
		for t := 0.0; t <= top+step/2; t += step {
			y := y0 + h - t*scale
			w(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y, width-right, y)
			w(`<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", left-6, y+4, trimFloat(t))
		}
		w(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", left, y0+h, width-right, y0+h)
		if len(systems) == 0 {
			continue
		}
		groupW := plotW / float64(len(systems))
		barW := groupW * 0.8 / float64(len(Percentiles))
		for si, s := range systems {
			gx := float64(left) + float64(si)*groupW + groupW*0.1
			for i, p := range Percentiles {
				v, ok := fixedLatency(proto, p)(s)
				if !ok {
					continue
				}
				bh := v * scale
				x := gx + float64(i)*barW
				w(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s p%s: %.3f ms</title></rect>`+"\n",
					x, y0+h-bh, barW-1, bh, barColors[i%len(barColors)], html.EscapeString(s.Name), ProtoTitle(proto), PctKey(p), v)
				w(`<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>`+"\n", x+barW/2, y0+h-bh-3, fmtMs(v))
			}
			w(`<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`+"\n", gx+groupW*0.4, y0+h+16, html.EscapeString(s.Name))
		}
	}
	w("</svg>\n")
	return b.String()
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func fmtMs(v float64) string {
	switch {
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}
