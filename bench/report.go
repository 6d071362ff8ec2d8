package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The markers of the part of BENCHMARKS.md the bench rewrites; everything
// outside them is left as it is.
const (
	BeginMarker = "<!-- bench:begin -->"
	EndMarker   = "<!-- bench:end -->"
)

// WriteReports writes the JSON, the plot and BENCHMARKS.md that cfg names,
// from results measured now or read back from an earlier run's JSON.
func WriteReports(ctx context.Context, cfg Config, r *Results) error {
	if cfg.JSON != "" {
		if err := writeJSON(cfg.JSON, r); err != nil {
			return err
		}
	}
	// Each part rewrites its own section only: the scale part measured
	// alone leaves the labs' results as they were, and the other way round.
	labs := len(r.Measurements) > 0
	if cfg.Plot != "" && labs {
		if err := plot(ctx, cfg.Plot, r); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if cfg.Out != "" && labs {
		link := ""
		if cfg.Plot != "" {
			link = cfg.Plot
			if rel, err := filepath.Rel(filepath.Dir(cfg.Out), cfg.Plot); err == nil {
				link = rel
			}
		}
		if err := update(cfg.Out, Markdown(r, filepath.ToSlash(link))); err != nil {
			return err
		}
	}
	if cfg.Out != "" && len(r.Servers) > 0 {
		if err := updateSection(cfg.Out, ServersBeginMarker, ServersEndMarker, ServersMarkdown(r)); err != nil {
			return err
		}
	}
	if cfg.Out != "" && len(r.Scale) > 0 {
		if err := updateSection(cfg.Out, ScaleBeginMarker, ScaleEndMarker, ScaleMarkdown(r)); err != nil {
			return err
		}
	}
	return nil
}

// writeMachine writes the machine a part ran on and the versions of what
// it ran: fwpush and Go, then those of more, each that is known.
func writeMachine(b *strings.Builder, m Machine, more ...string) {
	fmt.Fprintf(b, "Machine: %s, %d cores, %.1f GiB of memory; %s, %s.  \n", orUnknown(m.CPU), m.Cores, m.MemoryGiB, orUnknown(m.OS), orUnknown(m.Kernel))
	versions := []string{"fwpush " + strings.TrimPrefix(orUnknown(m.FwPush), "fwpush "), m.Go}
	for _, v := range more {
		if v != "" {
			versions = append(versions, v)
		}
	}
	fmt.Fprintf(b, "Versions: %s.  \n", strings.Join(versions, "; "))
}

// defaultHead starts a BENCHMARKS.md that does not exist yet.
const defaultHead = `# Benchmarks

Written by ` + "`make bench`" + ` between the markers below; text outside them is kept.

`

// update replaces what lies between the markers of the file at path with
// section, creating the file if needed and adding the markers at its end
// if it has none.
func update(path, section string) error {
	return updateSection(path, BeginMarker, EndMarker, section)
}

// updateSection replaces what lies between the markers beginMarker and
// endMarker of the file at path with section, as update does with the
// labs' markers.
func updateSection(path, beginMarker, endMarker, section string) error {
	old, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		old, err = []byte(defaultHead), nil
	}
	if err != nil {
		return err
	}
	block := beginMarker + "\n" + section + endMarker + "\n"
	var out []byte
	begin := bytes.Index(old, []byte(beginMarker))
	end := bytes.Index(old, []byte(endMarker))
	switch {
	case begin >= 0 && end > begin:
		rest := old[end+len(endMarker):]
		rest = bytes.TrimPrefix(rest, []byte("\n"))
		out = append(append(append(out, old[:begin]...), block...), rest...)
	case begin < 0 && end < 0:
		out = append(bytes.TrimRight(old, "\n"), []byte("\n\n"+block)...)
	default:
		return fmt.Errorf("%s: the markers %s and %s are broken: fix them by hand", path, beginMarker, endMarker)
	}
	return os.WriteFile(path, out, 0o644)
}

// Markdown is the results as the section of BENCHMARKS.md: the setup, the
// tables at each round-trip time, the ratios, the round trips and the plot
// (plot is its link, "" for none).
func Markdown(r *Results, plot string) string {
	var b strings.Builder
	m := r.Machine
	rtts := r.rtts()
	fmt.Fprintf(&b, "## Results\n\nMeasured by `make bench` (`go run ./bench/cmd/fwbench`) on %s UTC: labs of the example fleet ",
		r.Date.Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "(`lab.FleetTOML`: a tunnel, a load balancer, then app and db servers two to one) of %s hosts",
		joinInts(r.Sizes))
	for _, rtt := range rtts {
		fmt.Fprintf(&b, "; %s: %s hosts, %d run%s of each", rttName(rtt), joinInts(r.sizesAt(rtt)), r.runsAt(rtt), plural(r.runsAt(rtt)))
	}
	b.WriteString(". Every number is the median, with the least and the greatest in brackets. ")
	fmt.Fprintf(&b, "fwpush's `parallel`, Ansible's forks and the OpenSSH loop's concurrency are all %d.", r.Parallel)
	if len(rtts) > 1 || rtts[0] != 0 {
		b.WriteString(" RTT is the round-trip time between the controller and the tunnel: 0 is the lab's own links, " +
			"any other the relay described below, which every tool dials the tunnel through.")
	}
	b.WriteString("\n\n")
	writeMachine(&b, m, m.OpenSSH, m.Iptables, m.Ansible, m.Mitogen)
	fmt.Fprintf(&b, "The machine's 1-minute load average before the measurements went from %.1f to %.1f: it is shared with other work, hence the ranges.\n", r.Load[0], r.Load[1])

	for _, rtt := range rtts {
		sizes := r.sizesAt(rtt)
		fmt.Fprintf(&b, "\n### Wall time, seconds, %s\n\n", rttName(rtt))
		table(&b, r, rtt, sizes, func(x *Measurement) string {
			return fmt.Sprintf("%s (%s–%s)", secs(x.Wall.Median), secs(x.Wall.Min), secs(x.Wall.Max))
		})
		if rows := ratios(r, rtt, sizes); len(rows) > 0 {
			fmt.Fprintf(&b, "\n### Ratios (medians), %s\n\n", rttName(rtt))
			header(&b, sizes)
			for _, row := range rows {
				b.WriteString(row)
			}
		}
		if rtt > 0 {
			fmt.Fprintf(&b, "\n### Round trips, %s\n\n", rttName(rtt))
			table(&b, r, rtt, sizes, func(x *Measurement) string {
				paid := "–"
				if z := r.Get(x.Scenario, x.Hosts, 0); z != nil {
					paid = fmt.Sprintf("%.1f", (x.Wall.Median-z.Wall.Median)/rtt.Seconds())
				}
				return fmt.Sprintf("%s (%.0f turns / %.0f conn)", paid, x.TunnelTurns.Median, x.TunnelConns.Median)
			})
			fmt.Fprintf(&b, `
The first number is the round trips the run paid: (its median wall time at
%[1]s − its median at RTT 0) ÷ %[2]s, the round trips in a row on its
critical path. With every host in flight at once (up to `+"`parallel`"+`), that
is about one host's round trips and the tunnel's connection; with more hosts
than `+"`parallel`"+`, as many hosts' in a row as there are waves. In brackets, the
relay's counts, medians per run: the clients' turns (each time a client
received bytes after having sent some since it last received any) and the
TCP connections to the tunnel. The SSH channels of many hosts share one
connection and their overlapping exchanges one turn, so turns are not per
host; the round trips per host are held by a test (see the notes below).
Where the lab saturates the machine's CPUs, the work of the run at RTT 0
partly overlaps the waits at %[1]s, and the first number undercounts.
`, rttName(rtt), strings.TrimPrefix(rttName(rtt), "RTT "))
		}
	}

	cpuRTT := rtts[0]
	fmt.Fprintf(&b, "\n### CPU time (user + system) and peak memory (RSS) of the client, medians, %s\n\n", rttName(cpuRTT))
	table(&b, r, cpuRTT, r.sizesAt(cpuRTT), func(x *Measurement) string {
		if x.MaxRSS.Median == 0 {
			return secs(x.CPU.Median) + " s"
		}
		return fmt.Sprintf("%s s, %.1f MiB", secs(x.CPU.Median), x.MaxRSS.Median)
	})
	b.WriteString(`
For fwpush these are fwpush's own process, from wait4 in a tiny launcher
(bench/cmd/fwbench-launch) that starts it in the lab's controller namespace
through nsenter, which execs it. The launcher is there because a child that Go
starts (with vfork) inherits its parent's peak RSS when it execs: started by
the bench, every program would show the bench's peak. Each peak above is
above its launcher's. For Ansible they are ansible-playbook and the workers it
waited for (Mitogen's included), not the ControlMaster processes that outlive
it. For OpenSSH, the CPU of every client and of starting the master, added
up; its clients start without a launcher each, so their peak is not known.
`)
	if plot != "" {
		fmt.Fprintf(&b, "\n![Wall time against fleet size, per tool](%s)\n", plot)
	}
	b.WriteString(`
How each is measured, from a fresh start every run (the tools interleaved):
- Before every push (fwpush's dry run and first push, each Ansible run) every
  host is reset from the machine: a permissive ruleset that already uses
  conntrack (policy ACCEPT, ` + "`-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`" + `, IPv4
  and IPv6), and no /etc/iptables/rules.v4, rules.v6 or /var/lib/fwpush/applied.
- fwpush: ` + "`run --dry-run`" + ` (must exit 2: changes pending), ` + "`run --no-verify --quiet`" + `
  (the first push), the same again (must print nothing: every host unchanged),
  then ` + "`check`" + `. After the first push, and after every Ansible run, the bench
  proves that each host's live rules are its policy (canonical form) and that
  rules.v4 and rules.v6 are the rendered files.
- Ansible: bench/ansible/push.yml with the policies ` + "`fwpush render`" + ` wrote; copy
  both files to /etc/iptables, iptables-restore and ip6tables-restore them,
  read them back with iptables-save. Pipelining on, ControlPersist, no facts,
  forks as above, a 60 s connection timeout (with the default 10 s, Mitogen's
  start on 20 hosts at once times out on a loaded machine); every host but the
  tunnel through ProxyJump over one
  ControlMaster connection to the tunnel, which is opened inside the timed
  span (as fwpush dials the tunnel inside its own).
- OpenSSH floor: one ControlMaster connection to the tunnel, then one ` + "`ssh`" + ` per
  host (ProxyJump over the master) running ` + "`iptables-save`" + `, concurrently as above.
- At an RTT other than 0, bench/relay stands between the controller and the
  tunnel: a REDIRECT rule in the controller's namespace sends every new TCP
  connection to the tunnel's address to the relay (but the relay's own, which
  carry a socket mark the rule skips), so no tool needs to know. The relay
  holds each chunk it reads RTT/2 in its direction, in order, with
  TCP_NODELAY on both sides; bytes that arrive together travel together, as
  on a real link. It opens its connection to the tunnel 1.5 RTT after the
  client's, which ends at the relay at once: the tunnel's banner then reaches
  the client two round trips after connect, as over a real link. Beyond the
  tunnel (its connections to the hosts) everything stays at the lab's speed,
  as inside a data centre. No loss, no jitter, no bandwidth limit.
- Everything runs in the lab's controller namespace, with the lab's key and
  known_hosts (host keys checked). The OpenSSH clients use the key exchange
  fwpush's Go client settles on with these servers (curve25519-sha256), but
  for the second floor, which keeps OpenSSH's default (sntrup761x25519, first
  on OpenSSH 9.2's list): what a plain ssh loop pays, about 0.1 s more CPU
  per connection on each side.
`)
	return b.String()
}

func header(b *strings.Builder, sizes []int) {
	b.WriteString("| |")
	for _, n := range sizes {
		fmt.Fprintf(b, " %d hosts |", n)
	}
	b.WriteString("\n|---|")
	for range sizes {
		b.WriteString("---|")
	}
	b.WriteString("\n")
}

// table writes one row per scenario measured at rtt, one cell per size.
func table(b *strings.Builder, r *Results, rtt time.Duration, sizes []int, cell func(*Measurement) string) {
	header(b, sizes)
	for _, sc := range scenarios {
		if !r.has(sc.id, rtt) {
			continue
		}
		fmt.Fprintf(b, "| %s |", sc.label)
		for _, n := range sizes {
			c := "–"
			if x := r.Get(sc.id, n, rtt); x != nil {
				c = cell(x)
			}
			fmt.Fprintf(b, " %s |", c)
		}
		b.WriteString("\n")
	}
}

// ratios are the rows comparing fwpush with the better Ansible strategy
// and with the OpenSSH floors at rtt, where both sides were measured.
func ratios(r *Results, rtt time.Duration, sizes []int) []string {
	var rows []string
	var vsAnsible strings.Builder
	anyAnsible := false
	vsAnsible.WriteString("| first push: the better Ansible strategy takes fwpush's time × |")
	for _, n := range sizes {
		push := r.Get(FirstPush, n, rtt)
		best := r.Get(AnsibleRun, n, rtt)
		if m := r.Get(MitogenRun, n, rtt); m != nil && (best == nil || m.Wall.Median < best.Wall.Median) {
			best = m
		}
		c := "–"
		if push != nil && best != nil && push.Wall.Median > 0 {
			name := "linear"
			if best.Scenario == MitogenRun {
				name = "Mitogen"
			}
			c = fmt.Sprintf("%.1f× (%s, %s s)", best.Wall.Median/push.Wall.Median, name, secs(best.Wall.Median))
			anyAnsible = true
		}
		fmt.Fprintf(&vsAnsible, " %s |", c)
	}
	if anyAnsible {
		rows = append(rows, vsAnsible.String()+"\n")
	}
	for _, f := range []struct {
		floor Scenario
		label string
	}{
		{Floor, "| unchanged re-run: fwpush's time ÷ the OpenSSH floor's |"},
		{FloorDefault, "| unchanged re-run: fwpush's time ÷ the floor's with OpenSSH's default key exchange |"},
	} {
		if row, ok := rerunRatio(r, rtt, sizes, f.floor, f.label); ok {
			rows = append(rows, row)
		}
	}
	return rows
}

// rerunRatio is the row of fwpush's re-run time over floor's at rtt, per
// size; ok is false when no size has both.
func rerunRatio(r *Results, rtt time.Duration, sizes []int, floor Scenario, label string) (row string, ok bool) {
	var b strings.Builder
	b.WriteString(label)
	for _, n := range sizes {
		c := "–"
		if re, fl := r.Get(Rerun, n, rtt), r.Get(floor, n, rtt); re != nil && fl != nil && fl.Wall.Median > 0 {
			c = fmt.Sprintf("%.2f", re.Wall.Median/fl.Wall.Median)
			ok = true
		}
		fmt.Fprintf(&b, " %s |", c)
	}
	return b.String() + "\n", ok
}

// rttName is how the report names a round-trip time: "RTT 0", "RTT 60 ms".
func rttName(rtt time.Duration) string {
	if rtt == 0 {
		return "RTT 0"
	}
	if rtt%time.Millisecond == 0 {
		return fmt.Sprintf("RTT %d ms", rtt/time.Millisecond)
	}
	return "RTT " + rtt.String()
}

// secs prints seconds with three significant digits, at most.
func secs(s float64) string {
	switch {
	case s >= 100:
		return fmt.Sprintf("%.0f", s)
	case s >= 10:
		return fmt.Sprintf("%.1f", s)
	case s >= 1:
		return fmt.Sprintf("%.2f", s)
	}
	return fmt.Sprintf("%.3f", s)
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
