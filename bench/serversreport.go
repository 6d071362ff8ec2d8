package bench

import (
	"fmt"
	"strings"
	"time"
)

// The markers of the servers' section of BENCHMARKS.md, which the servers
// part of the bench rewrites on its own.
const (
	ServersBeginMarker = "<!-- servers:begin -->"
	ServersEndMarker   = "<!-- servers:end -->"
)

// unchangedReadProcs is what runner/remote's TestSetsForks holds an
// unchanged host with sets to: the processes of fwpush's read, its login
// shell included. The report compares the re-run's count with it.
const unchangedReadProcs = 7

// ServersMarkdown is the servers part of the results as its section of
// BENCHMARKS.md: per host, each tool's CPU time and processes on the
// servers, then the tunnel's apart from the other hosts', and how it was
// measured.
func ServersMarkdown(r *Results) string {
	var b strings.Builder
	m := r.Machine
	sizes := make([]int, len(r.Servers))
	load := [2]float64{}
	source := ""
	for i, s := range r.Servers {
		sizes[i] = s.Size
		load = widen(widen(load, s.Load[0]), s.Load[1])
		source = s.CPUSource
	}
	b.WriteString("## Servers' side, per host\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (the servers part of `go run ./bench/cmd/fwbench`, `-servers`) on %s UTC: labs of the example fleet "+
		"(`lab.FleetTOML`: a tunnel, a load balancer, then app and db servers two to one) of %s hosts, at RTT 0; "+
		"the CPU time from %s of each tool (the median, with the least and the greatest in brackets), "+
		"the processes from one more run, counted; the tools interleaved.\n\n",
		r.Date.Format("2006-01-02 15:04"), joinInts(sizes), serverRuns(r))
	writeMachine(&b, m, m.OpenSSH, m.Iptables, m.Ansible, m.Mitogen)
	fmt.Fprintf(&b, "The machine's 1-minute load average before the runs went from %.1f to %.1f: it is shared with other work, "+
		"which the numbers below do not include (they are the lab's servers' own), but which slows them down.\n", load[0], load[1])

	b.WriteString("\n### Every host, on average\n\n| |")
	for _, n := range sizes {
		fmt.Fprintf(&b, " %d hosts: CPU, ms per host | %d hosts: processes per host |", n, n)
	}
	b.WriteString("\n|---|")
	for range sizes {
		b.WriteString("---|---|")
	}
	b.WriteString("\n")
	for _, sc := range serverScenarios {
		if !hasServerScenario(r, sc) {
			continue
		}
		fmt.Fprintf(&b, "| %s |", label(sc))
		for _, s := range r.Servers {
			x := s.get(sc)
			if x == nil {
				b.WriteString(" – | – |")
				continue
			}
			all := func(ServerHost) bool { return true }
			fmt.Fprintf(&b, " %s | %s |", cpuCell(s, x, all), procsCell(s, x, all))
		}
		b.WriteString("\n")
	}

	for _, s := range r.Servers {
		tun := func(h ServerHost) bool { return h.Tunnel }
		others := func(h ServerHost) bool { return !h.Tunnel }
		fmt.Fprintf(&b, "\n### The tunnel, and the hosts behind it, %d hosts\n\n", s.Size)
		b.WriteString("| | the tunnel: CPU, ms | the tunnel: processes (sshd's + the commands'; connections) " +
			"| a host behind it: CPU, ms | a host behind it: processes (sshd's + the commands'; connections) |\n|---|---|---|---|---|\n")
		for _, sc := range serverScenarios {
			x := s.get(sc)
			if x == nil {
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", label(sc), cpuCell(s, x, tun), procsDetail(s, x, tun), cpuCell(s, x, others), procsDetail(s, x, others))
		}
	}
	for _, s := range r.Servers {
		if s.CountError != "" {
			fmt.Fprintf(&b, "\nAt %d hosts the counted run failed, and counted nothing from there on (\"–\"): %s. "+
				"strace stops every system call of the sshd it follows, and on a loaded machine a host's step can outlast its deadline.\n", s.Size, s.CountError)
		}
	}
	if line := unchangedCheck(r); line != "" {
		b.WriteString("\n" + line + "\n")
	}
	fmt.Fprintf(&b, `
How it is measured. The lab's hosts are network namespaces sharing this
machine's kernel, its process table and its CPUs with the controller and with
other work, so the servers' side is read per host, not from the whole machine
(/proc/stat). CPU: every host's sshd (the listener, which serves each
connection with a fork of itself, `+"`sshd -r`"+`) is moved into a cgroup of its
own, which everything it starts inherits (%s); the
difference before and after a run, once the hosts' sshd serve no connection
any more, is that host's CPU time (user + system). A cgroup keeps the time
of every process that was in it: those that ended, those orphaned, reaped
by init or by nobody (some inits reap no orphan), and those still running (the
guard fwpush leaves until its confirm, Ansible's ControlPersist sessions,
ended inside the run); the bench's own commands on the hosts (reset,
verify) are not in it. Processes: in one more run of each tool, not timed,
one `+"`strace -f -ff -e trace=clone,clone3,fork,vfork,execve`"+` per host follows
its listener, and every fork it logs is counted as runner/remote's TestForks
counts them: as sshd's own when the child runs no other program and its
parent is sshd (the listener's fork per connection accepted, the
privilege-separated child of a login, 2 in all for a root login as the lab's;
and a session of the internal-sftp subsystem, which runs in sshd without
exec: Ansible's file copies), as a command's otherwise (each session's
login shell and everything under it). The counts do not depend on the load;
the CPU times do: on a machine whose CPUs are shared by many processes each
one runs slower (caches, and time the hypervisor takes that this kernel
does not account as stolen), so they are the servers' CPU at the load
given above, comparable between the tools of one run. fwpush's dry run and
`+"`check`"+` are not run here (the lab part times them).
For fwpush, a host behind the tunnel costs the tunnel no process (its
channel runs in the tunnel's sshd), only the CPU of forwarding its bytes. A
tunnel that changes is read twice by fwpush's run: early, while the hosts
behind it are at work (an unchanged one is then done), and again in its turn:
one read more than a host behind it.
`, source)
	return b.String()
}

// serverRuns says how many runs the CPU times come from: "3 runs", or
// per size where they differ ("2 runs at 6 hosts, 1 at 50").
func serverRuns(r *Results) string {
	same := true
	for _, s := range r.Servers {
		same = same && s.Runs == r.Servers[0].Runs
	}
	if same {
		return fmt.Sprintf("%d run%s", r.Servers[0].Runs, plural(r.Servers[0].Runs))
	}
	var parts []string
	for i, s := range r.Servers {
		if i == 0 {
			parts = append(parts, fmt.Sprintf("%d run%s at %d hosts", s.Runs, plural(s.Runs), s.Size))
		} else {
			parts = append(parts, fmt.Sprintf("%d at %d", s.Runs, s.Size))
		}
	}
	return strings.Join(parts, ", ")
}

// hasServerScenario reports whether any size measured sc.
func hasServerScenario(r *Results, sc Scenario) bool {
	for _, s := range r.Servers {
		if s.get(sc) != nil {
			return true
		}
	}
	return false
}

// cpuCell is the median over the runs of the CPU time per host of the
// hosts that match, in ms, with its range.
func cpuCell(s *Servers, x *ServerScenario, match func(ServerHost) bool) string {
	var perRun []float64
	for _, run := range x.CPU {
		var sum time.Duration
		n := 0
		for i, d := range run {
			if i < len(s.Hosts) && match(s.Hosts[i]) {
				sum += d
				n++
			}
		}
		if n > 0 {
			perRun = append(perRun, ms(sum)/float64(n))
		}
	}
	if len(perRun) == 0 {
		return "–"
	}
	st := stat(perRun)
	if len(perRun) == 1 {
		return msString(st.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", msString(st.Median), msString(st.Min), msString(st.Max))
}

// procsSum adds up the counted processes of the hosts that match.
func procsSum(s *Servers, x *ServerScenario, match func(ServerHost) bool) (total Procs, hosts int) {
	for i, p := range x.Procs {
		if i < len(s.Hosts) && match(s.Hosts[i]) {
			total = total.plus(p)
			hosts++
		}
	}
	return total, hosts
}

// procsCell is the processes per host of the hosts that match.
func procsCell(s *Servers, x *ServerScenario, match func(ServerHost) bool) string {
	total, n := procsSum(s, x, match)
	if n == 0 {
		return "–"
	}
	return perHost(total.Total(), n)
}

// procsDetail is procsCell with sshd's and the commands' apart, and the
// connections.
func procsDetail(s *Servers, x *ServerScenario, match func(ServerHost) bool) string {
	total, n := procsSum(s, x, match)
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s + %s; %s)", perHost(total.Total(), n), perHost(total.SSHD, n), perHost(total.Commands, n), perHost(total.Conns, n))
}

// perHost is sum ÷ hosts, whole when it divides.
func perHost(sum, hosts int) string {
	if sum%hosts == 0 {
		return fmt.Sprint(sum / hosts)
	}
	return fmt.Sprintf("%.1f", float64(sum)/float64(hosts))
}

// msString prints milliseconds with three significant digits, at most.
func msString(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// UnchangedProcs are the processes the counted unchanged re-run forked on
// each app or db server (fwpush's read of a host with sets, as
// TestSetsForks counts it, and sshd's own for its connection), at the
// smallest size the servers part measured; ok is false when it did not
// count a re-run.
func UnchangedProcs(r *Results) (procs []Procs, ok bool) {
	for _, s := range r.Servers {
		x := s.get(Rerun)
		if x == nil || len(x.Procs) != len(s.Hosts) {
			continue
		}
		for i, h := range s.Hosts {
			if h.Role == "app" || h.Role == "db" {
				procs = append(procs, x.Procs[i])
			}
		}
		return procs, len(procs) > 0
	}
	return nil, false
}

// unchangedCheck is the sentence comparing the re-run's processes on an
// unchanged app or db server with what runner/remote's budget says.
func unchangedCheck(r *Results) string {
	procs, ok := UnchangedProcs(r)
	if !ok {
		return ""
	}
	lo, hi := procs[0], procs[0]
	for _, p := range procs {
		if p.Total() < lo.Total() {
			lo = p
		}
		if p.Total() > hi.Total() {
			hi = p
		}
	}
	what := func(p Procs) string {
		return fmt.Sprintf("%d: %d of sshd for its %d connection%s and %d of fwpush's commands", p.Total(), p.SSHD, p.Conns, plural(p.Conns), p.Commands)
	}
	counts := what(lo)
	if lo != hi {
		counts = "from " + what(lo) + ", to " + what(hi)
	}
	verdict := "the same as"
	if lo.Commands != unchangedReadProcs || hi.Commands != unchangedReadProcs {
		verdict = "NOT the same as"
	}
	return fmt.Sprintf("Cross-check: on each app or db server, unchanged in fwpush's re-run, the counted run found %s, "+
		"%s the %d that runner/remote's TestSetsForks holds an unchanged host with sets to (its read, the login shell included; "+
		"sshd's own processes are outside what that test runs).", counts, verdict, unchangedReadProcs)
}
