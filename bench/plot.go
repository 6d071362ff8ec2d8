package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// plotted are the scenarios on the plot: the pushes and the re-run against
// the floor (dry run and check are in the tables).
var plotted = []struct {
	s     Scenario
	style string
}{
	{FirstPush, `lc rgb "#1f4e9c" lw 2 pt 7`},
	{Rerun, `lc rgb "#4fa3e0" lw 2 pt 5`},
	{AnsibleRun, `lc rgb "#e06c00" lw 2 pt 9`},
	{MitogenRun, `lc rgb "#b2182b" lw 2 pt 11`},
	{Floor, `lc rgb "#333333" lw 2 dt 2 pt 13`},
	{FloorDefault, `lc rgb "#888888" lw 2 dt 3 pt 15`},
}

// plot draws the median wall time of each plotted scenario at RTT 0
// against the fleet size, with the min–max range as error bars, into an
// SVG file with gnuplot. Both axes are logarithmic: time that grows
// linearly with the fleet is a line of slope one, whatever its constant.
func plot(ctx context.Context, path string, r *Results) error {
	var script strings.Builder
	var plots []string
	sizes := r.sizesAt(0)
	for i, p := range plotted {
		s := p.s
		if !r.has(s, 0) {
			continue
		}
		fmt.Fprintf(&script, "$d%d << EOD\n", i)
		for _, n := range sizes {
			if m := r.Get(s, n, 0); m != nil {
				fmt.Fprintf(&script, "%d %g %g %g\n", n, m.Wall.Median, m.Wall.Min, m.Wall.Max)
			}
		}
		script.WriteString("EOD\n")
		plots = append(plots, fmt.Sprintf("$d%d using 1:2:3:4 with yerrorlines %s title %q", i, p.style, plainLabel(s)))
	}
	if len(plots) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	var tics []string
	for _, n := range sizes {
		tics = append(tics, fmt.Sprint(n))
	}
	fmt.Fprintf(&script, `set terminal svg size 800,560 dynamic noenhanced font "sans,12" background "white"
set output %q
set title "Wall time against fleet size, RTT 0 (median of %d; bars: least and greatest)"
set xlabel "hosts"
set ylabel "seconds"
set logscale xy
set xtics (%s)
set xrange [%g:%g]
set grid
set key below
plot %s
`, path, r.Runs, strings.Join(tics, ", "), float64(sizes[0])*0.8, float64(sizes[len(sizes)-1])*1.25, strings.Join(plots, ", \\\n  "))
	cmd := exec.CommandContext(ctx, "gnuplot")
	cmd.Stdin = strings.NewReader(script.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gnuplot: %w: %s", err, tail(stderr.Bytes()))
	}
	return nil
}

// plainLabel is a scenario's label without Markdown, for the plot's key.
func plainLabel(s Scenario) string {
	return strings.ReplaceAll(label(s), "`", "")
}
