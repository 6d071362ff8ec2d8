// Command fwbench measures fwpush side by side with Ansible (linear and
// Mitogen) and a loop of OpenSSH clients on labs of the example fleet, and
// rewrites the results section of BENCHMARKS.md. It needs root (the lab);
// `make bench` runs it with its defaults.
//
//	fwbench                                     # 6, 50, 150 hosts at RTT 0, 3 runs; 6, 50 at 60 ms, 2 runs; every tool; the scale part; the servers part at 6
//	fwbench -sizes 6 -runs 1 -rtt 0 -tools fwpush -scale '' -servers '' -out /tmp/b.md -plot ''
//	fwbench -sizes '' -servers ''               # the scale part alone: compile and validate of 50 to 10,000 hosts, no lab
//	fwbench -sizes '' -scale '' -servers 6,50   # the servers part alone: each tool's CPU time and processes on the servers, per host
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwpush/fwpush/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fwbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sizes := fs.String("sizes", "6,50,150", "fleet sizes of the labs, hosts, comma-separated (\"\": no lab)")
	scale := fs.String("scale", "50,500,5000,10000", "fleet sizes of the scale part (compile and validate, no lab), comma-separated (\"\": none)")
	scaleRuns := fs.Int("scale-runs", 3, "runs of the scale part at every size")
	servers := fs.String("servers", "6", "fleet sizes of the servers part, comma-separated: each tool's CPU time and processes forked on the lab's servers, per host, at RTT 0 (\"\": none; 50 adds about 20 minutes on 2 busy cores, and its run under strace may outlast fwpush's deadlines there)")
	serverRuns := fs.Int("servers-runs", 3, "runs of every tool for the servers' CPU time at every size of the servers part (the processes are counted in one more)")
	runs := fs.Int("runs", 3, "runs of every measurement at every size, at RTT 0")
	rtts := fs.String("rtt", "0,60ms", "round-trip times between the controller and the tunnel, comma-separated (0: the lab's own links; any other: through a relay)")
	rttSizes := fs.String("rtt-sizes", "", "fleet sizes measured at the RTTs other than 0 (default: those of -sizes up to 50)")
	rttRuns := fs.Int("rtt-runs", 2, "runs of every measurement at the RTTs other than 0")
	tools := fs.String("tools", "fwpush,ansible,mitogen,openssh", "what to measure, comma-separated")
	fwpush := fs.String("fwpush", "bin/fwpush", "the fwpush binary (make build)")
	launcher := fs.String("launcher", "bin/fwbench-launch", "bench/cmd/fwbench-launch built: starts the programs whose memory is measured")
	out := fs.String("out", "BENCHMARKS.md", "the file whose results section to rewrite (\"\": none)")
	plot := fs.String("plot", "docs/bench.svg", "the SVG plot to write with gnuplot (\"\": none)")
	jsonOut := fs.String("json", "", "write every sample as JSON to this file (after each lab too: a bench stopped midway keeps what it measured, for -from-json)")
	install := fs.Bool("install", true, "apt-get install what the tools need (ansible-core, ansible-mitogen, gnuplot-nox) when missing")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	from := fs.String("from-json", "", "measure nothing: write the reports from the JSON of an earlier run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("fwbench takes no arguments, got %q", fs.Args())
	}
	cfg := bench.Config{Runs: *runs, RTTRuns: *rttRuns, ScaleRuns: *scaleRuns, ServerRuns: *serverRuns, FwPush: *fwpush, Launcher: *launcher, Out: *out, Plot: *plot, JSON: *jsonOut, Install: *install, Log: stderr}
	if *quiet {
		cfg.Log = io.Discard
	}
	var err error
	if cfg.Sizes, err = parseSizes(*sizes); err != nil {
		return fmt.Errorf("-sizes: %w", err)
	}
	if cfg.ScaleSizes, err = parseSizes(*scale); err != nil {
		return fmt.Errorf("-scale: %w", err)
	}
	if cfg.ServerSizes, err = parseSizes(*servers); err != nil {
		return fmt.Errorf("-servers: %w", err)
	}
	if *rttSizes == "" {
		for _, n := range cfg.Sizes {
			if n <= 50 {
				cfg.RTTSizes = append(cfg.RTTSizes, n)
			}
		}
	} else if cfg.RTTSizes, err = parseSizes(*rttSizes); err != nil {
		return fmt.Errorf("-rtt-sizes: %w", err)
	}
	for _, s := range strings.Split(*rtts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d < 0 {
			return fmt.Errorf("-rtt: %q is not a round-trip time (0, 60ms, ...)", s)
		}
		cfg.RTTs = append(cfg.RTTs, d)
	}
	t, err := bench.ParseTools(*tools)
	if err != nil {
		return fmt.Errorf("-tools: %w", err)
	}
	cfg.Tools = t
	for _, p := range []struct {
		flag string
		path *string
	}{{"fwpush", &cfg.FwPush}, {"launcher", &cfg.Launcher}} {
		if abs, err := filepath.Abs(*p.path); err == nil {
			*p.path = abs
		}
		if _, err := os.Stat(*p.path); err != nil && *from == "" {
			return fmt.Errorf("-%s: %w (make bench builds it in bin/)", p.flag, err)
		}
	}
	if *from != "" {
		return rewrite(ctx, cfg, *from, stdout)
	}
	res, err := bench.Run(ctx, cfg)
	if res != nil {
		printSections(stdout, res)
	}
	return err
}

// printSections writes the sections of what was measured.
func printSections(w io.Writer, res *bench.Results) {
	if len(res.Measurements) > 0 {
		fmt.Fprint(w, bench.Markdown(res, ""))
	}
	if len(res.Servers) > 0 {
		fmt.Fprint(w, bench.ServersMarkdown(res))
	}
	if len(res.Scale) > 0 {
		fmt.Fprint(w, bench.ScaleMarkdown(res))
	}
}

// parseSizes reads a comma-separated list of fleet sizes; "" is none.
func parseSizes(list string) ([]int, error) {
	var out []int
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	for _, s := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("%q is not a number of hosts", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// rewrite writes the reports again from the JSON of an earlier run, as
// when the report's wording changed but the numbers stand.
func rewrite(ctx context.Context, cfg bench.Config, path string, stdout io.Writer) error {
	res, err := bench.ReadJSON(path)
	if err != nil {
		return err
	}
	cfg.JSON = ""
	if err := bench.WriteReports(ctx, cfg, res); err != nil {
		return err
	}
	printSections(stdout, res)
	return nil
}
