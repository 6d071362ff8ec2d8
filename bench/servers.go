package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fwpush/fwpush/internal/strace"
)

// The servers part measures what each tool costs the lab's servers, per
// host: their CPU time, and the processes they fork. The lab's hosts are
// network namespaces that share this machine's kernel and its process
// table, and the machine is shared with other work, so neither can be read
// from the whole machine (/proc/stat): each is attributed to the hosts.
//
//   - CPU: every host's sshd (the listener, which serves each connection
//     with a fork of itself) is moved into a cgroup of its own, which
//     everything it forks inherits; the cgroup's CPU usage before and after
//     a run is that host's side of it, exactly: processes that end, that
//     are reaped by anyone (or never: the init of the machine this was
//     written on reaps no orphan) or that outlive the run are all in it,
//     and nothing else is.
//   - Processes: one strace per host follows its listener (-f) during a run
//     of its own, untimed (strace stops every system call of an attached
//     process), and the forks it logged are counted, each classed as
//     sshd's own (a child that runs no other program: one per connection
//     accepted, the privilege-separated children of a login, an
//     internal-sftp session) or a command's (a session's login shell and everything under it, as
//     runner/remote's TestForks counts them).

// serverScenarios are the scenarios the servers part reports, in order:
// those that run every tool's job; fwpush's dry run and check are not run
// there (see fleet.fwpush).
var serverScenarios = []Scenario{FirstPush, Rerun, AnsibleRun, MitogenRun, Floor, FloorDefault}

// Servers is what the servers part measured on a lab of one size.
type Servers struct {
	Size int `json:"hosts"`
	// Runs is how many runs of every tool the CPU times come from; the
	// processes come from one more run, counted.
	Runs int `json:"runs"`
	// Hosts are the lab's hosts in the inventory's order, which every
	// per-host list below follows.
	Hosts []ServerHost `json:"host_list"`
	// CPUSource is how the CPU time was read: the cgroup version and file.
	CPUSource string `json:"cpu_source"`
	// Load is the least and greatest 1-minute load average seen before
	// each run.
	Load      [2]float64        `json:"load"`
	Scenarios []*ServerScenario `json:"scenarios"`
	// CountError is why the counted run failed, "" when it did not: the
	// processes of the tools from there on were not counted.
	CountError string `json:"count_error,omitempty"`
}

// ServerHost is one host of the lab the servers part measured.
type ServerHost struct {
	Name string `json:"name"`
	Role string `json:"role"`
	// Tunnel is the host every other one is reached through.
	Tunnel bool `json:"tunnel,omitempty"`
}

// ServerScenario is one scenario's side on the servers, at one size.
type ServerScenario struct {
	Scenario Scenario `json:"scenario"`
	Label    string   `json:"label"`
	// CPU is every run's CPU time (user + system) of each host.
	CPU [][]time.Duration `json:"cpu_ns"`
	// Procs are the processes the counted run forked on each host.
	Procs []Procs `json:"processes"`
}

// Procs are the processes forked on one host during one run.
type Procs struct {
	// Conns are the TCP connections the host's sshd accepted: the forks
	// of its listener.
	Conns int `json:"connections"`
	// SSHD are sshd's own processes, which run no other program: the
	// listener's fork for each connection accepted, for each login the
	// privilege-separated child (and after authentication another, but
	// for root), and each session of the internal-sftp subsystem.
	SSHD int `json:"sshd"`
	// Commands are the sessions' processes: each session's login shell
	// and everything started under it, as runner/remote's TestForks
	// counts them.
	Commands int `json:"commands"`
}

// Total is every process forked.
func (p Procs) Total() int { return p.SSHD + p.Commands }

func (p Procs) plus(o Procs) Procs {
	return Procs{Conns: p.Conns + o.Conns, SSHD: p.SSHD + o.SSHD, Commands: p.Commands + o.Commands}
}

// get returns the scenario s of the servers part, or nil.
func (s *Servers) get(sc Scenario) *ServerScenario {
	for _, x := range s.Scenarios {
		if x.Scenario == sc {
			return x
		}
	}
	return nil
}

// scenario returns the scenario s, added if it is not there yet.
func (s *Servers) scenario(sc Scenario) *ServerScenario {
	if x := s.get(sc); x != nil {
		return x
	}
	x := &ServerScenario{Scenario: sc, Label: label(sc)}
	s.Scenarios = append(s.Scenarios, x)
	slices.SortStableFunc(s.Scenarios, func(a, b *ServerScenario) int {
		return slices.Index(serverScenarios, a.Scenario) - slices.Index(serverScenarios, b.Scenario)
	})
	return x
}

// measureServers measures the servers' side of every tool on the fleet,
// at RTT 0: cfg.ServerRuns runs reading the CPU, then one counting the
// processes, the tools interleaved.
func measureServers(ctx context.Context, cfg Config, f *fleet, res *Results) error {
	if err := f.setRTT(ctx, 0); err != nil {
		return err
	}
	st, err := f.lab.Status()
	if err != nil {
		return err
	}
	pids := map[string]int{}
	for _, n := range st.Nodes {
		pids[n.Name] = n.PID
	}
	out := &Servers{Size: len(f.inv.Hosts), Runs: cfg.ServerRuns}
	var hosts []watchedHost
	for _, h := range f.inv.Hosts {
		if pids[h.Name] == 0 {
			return fmt.Errorf("host %s: its sshd does not run", h.Name)
		}
		out.Hosts = append(out.Hosts, ServerHost{Name: h.Name, Role: h.Role, Tunnel: h.Name == f.inv.SSH.Tunnel})
		hosts = append(hosts, watchedHost{name: h.Name, sshd: pids[h.Name]})
	}
	cg, err := newCgroups(fmt.Sprintf("fwbench-%d-%d", os.Getpid(), out.Size))
	if err != nil {
		return err
	}
	f.cgroups = cg
	out.CPUSource = cg.source()
	for i := range hosts {
		if hosts[i].cgroup, err = cg.add(hosts[i].name, hosts[i].sshd); err != nil {
			return err
		}
	}
	logs, err := os.MkdirTemp(f.dir, "strace-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logs)
	res.Servers = append(res.Servers, out)
	for run := 1; run <= cfg.ServerRuns+1; run++ {
		counted := run > cfg.ServerRuns
		for _, t := range cfg.Tools {
			out.Load = widen(out.Load, loadAverage())
			w := &serverWatch{hosts: hosts, strace: counted, logs: logs, cpu: map[Scenario][]time.Duration{}, procs: map[Scenario][]Procs{}}
			f.watch = w
			_, err := f.measure(ctx, t)
			f.watch = nil
			what := fmt.Sprintf("run %d/%d", run, cfg.ServerRuns)
			if counted {
				what = "the counted run"
			}
			if err != nil && counted && ctx.Err() == nil {
				// Every system call of a traced sshd stops it: on a
				// loaded machine a host's step may outlast its deadline.
				// The CPU times stand; the counts say they failed.
				out.CountError = fmt.Sprintf("%s: %v", t, errorLine(err))
				fmt.Fprintf(cfg.Log, "bench: %d hosts, servers: the counted run failed, no process counted from here: %s\n", out.Size, out.CountError)
				return nil
			}
			if err != nil {
				return fmt.Errorf("servers, %s: %s: %w", what, t, err)
			}
			for _, sc := range serverScenarios {
				if cpu, ok := w.cpu[sc]; ok {
					x := out.scenario(sc)
					x.CPU = append(x.CPU, cpu)
					fmt.Fprintf(cfg.Log, "bench: %d hosts, servers, %s: %-18s cpu %7.1f ms/host\n", out.Size, what, sc, ms(mean(cpu)))
				}
				if p, ok := w.procs[sc]; ok {
					x := out.scenario(sc)
					x.Procs = p
					total := Procs{}
					for _, h := range p {
						total = total.plus(h)
					}
					fmt.Fprintf(cfg.Log, "bench: %d hosts, servers, %s: %-18s %5.1f processes/host (%d sshd, %d commands, %d connections)\n",
						out.Size, what, sc, float64(total.Total())/float64(len(p)), total.SSHD, total.Commands, total.Conns)
				}
			}
		}
	}
	return nil
}

// watchedHost is one lab host the servers part watches.
type watchedHost struct {
	name   string
	sshd   int    // its sshd listener's pid
	cgroup string // the directory of its cgroup
}

// serverWatch watches the hosts while a tool runs its scenarios: it reads
// their CPU, or with strace set counts the processes they fork, per
// scenario.
type serverWatch struct {
	hosts  []watchedHost
	strace bool
	logs   string // the directory of strace's logs
	cpu    map[Scenario][]time.Duration
	procs  map[Scenario][]Procs
}

// watchServers starts watching the servers for one scenario, when the
// servers part asked for it, and returns the function that ends the watch
// once the scenario's programs have ended (and before anything else runs
// on the hosts: verify does). Without a watch it does nothing.
func (f *fleet) watchServers(ctx context.Context) (end func(Scenario) error, err error) {
	w := f.watch
	if w == nil {
		return func(Scenario) error { return nil }, nil
	}
	if w.strace {
		return w.startStrace(ctx)
	}
	before, err := w.usage()
	if err != nil {
		return nil, err
	}
	return func(sc Scenario) error {
		w.settle(ctx)
		after, err := w.usage()
		if err != nil {
			return err
		}
		cpu := make([]time.Duration, len(before))
		for i := range before {
			cpu[i] = after[i] - before[i]
		}
		w.cpu[sc] = cpu
		return nil
	}, nil
}

// usage is every host's CPU time so far.
func (w *serverWatch) usage() ([]time.Duration, error) {
	out := make([]time.Duration, len(w.hosts))
	for i, h := range w.hosts {
		u, err := cgroupUsage(h.cgroup)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.name, err)
		}
		out[i] = u
	}
	return out, nil
}

// settleTimeout bounds how long a watch waits for the processes of a run to
// end on the hosts (the servers' side of a connection may end a moment after
// the client's).
const settleTimeout = 5 * time.Second

// settle waits until every host's sshd serves no connection any more, or
// for settleTimeout: what the run started has ended, and has been counted.
func (w *serverWatch) settle(ctx context.Context) {
	deadline := time.Now().Add(settleTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		busy := false
		for _, h := range w.hosts {
			if len(childrenOf(h.sshd)) > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// childrenOf lists the children of pid (Linux 3.5 and later).
func childrenOf(pid int) []string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	return strings.Fields(string(data))
}

// startStrace attaches one strace to every host's sshd, following its
// forks, and returns once each is attached.
func (w *serverWatch) startStrace(ctx context.Context) (func(Scenario) error, error) {
	if err := os.RemoveAll(w.logs); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(w.logs, 0o755); err != nil {
		return nil, err
	}
	cmds := make([]*exec.Cmd, len(w.hosts))
	stop := func() {
		for _, c := range cmds {
			if c != nil && c.Process != nil {
				_ = c.Process.Signal(os.Interrupt)
			}
		}
		for _, c := range cmds {
			if c != nil && c.Process != nil {
				_ = c.Wait()
			}
		}
	}
	for i, h := range w.hosts {
		// Not tied to ctx: it must detach (SIGINT), not die (SIGKILL),
		// or its tracees would stay stopped.
		c := exec.Command("strace", "-f", "-ff", "-qq", "-e", "trace=clone,clone3,fork,vfork,execve", "-e", "signal=none",
			"-o", filepath.Join(w.logs, h.name), "-p", strconv.Itoa(h.sshd))
		var stderr bytes.Buffer
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("host %s: strace: %w", h.name, err)
		}
		cmds[i] = c
		if err := waitTraced(ctx, h.sshd, c.Process.Pid); err != nil {
			stop()
			return nil, fmt.Errorf("host %s: strace: %w: %s", h.name, err, tail(stderr.Bytes()))
		}
	}
	return func(sc Scenario) error {
		w.settle(ctx)
		stop()
		procs := make([]Procs, len(w.hosts))
		for i, h := range w.hosts {
			p, err := countProcs(filepath.Join(w.logs, h.name), h.sshd)
			if err != nil {
				return fmt.Errorf("host %s: %w", h.name, err)
			}
			procs[i] = p
		}
		w.procs[sc] = procs
		return nil
	}, nil
}

// waitTraced waits until pid is traced by tracer.
func waitTraced(ctx context.Context, pid, tracer int) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return err
		}
		if field(data, "TracerPid", ':') == strconv.Itoa(tracer) {
			return nil
		}
		if !processRuns(tracer) {
			return fmt.Errorf("it ended before it attached to %d", pid)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("not attached to %d after 30 s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// processRuns reports whether pid exists and is not a zombie.
func processRuns(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i >= 0 && i+2 < len(data) && data[i+2] != 'Z' && data[i+2] != 'X'
}

// countProcs counts the processes forked in the strace logs prefix.PID
// (strace -f -ff -o prefix -p sshd), sshd being the listener: every fork
// of a process, sshd's own where the child runs no other program and its
// parent is sshd (the listener, or one of its children that runs no other
// program), the commands' otherwise. The logs are read as runner/remote's
// TestForks reads them (internal/strace).
func countProcs(prefix string, sshd int) (Procs, error) {
	procs, err := strace.Read(prefix)
	if err != nil {
		return Procs{}, err
	}
	if _, ok := procs[sshd]; !ok {
		return Procs{}, fmt.Errorf("no strace log of sshd (%d) among %d", sshd, len(procs))
	}
	p := Procs{Conns: len(procs[sshd].Children)}
	// Walk the tree from the listener: a child is sshd's own while it and
	// every parent up to the listener ran no other program.
	var walk func(pid int, sshdSide bool)
	walk = func(pid int, sshdSide bool) {
		for _, c := range procs[pid].Children {
			own := sshdSide && len(procs[c].Execs) == 0
			if own {
				p.SSHD++
			} else {
				p.Commands++
			}
			walk(c, own)
		}
	}
	walk(sshd, true)
	return p, nil
}

// cgroups is the cgroup of the servers part of one lab, with one cgroup
// per host in it.
type cgroups struct {
	v2   bool
	dir  string
	subs []string
}

// newCgroups makes the cgroup name: in the unified hierarchy (cgroup v2,
// whose cpu.stat counts CPU time whatever controllers are on), or else in
// cgroup v1's cpuacct hierarchy.
func newCgroups(name string) (*cgroups, error) {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil, err
	}
	v2, v1 := cgroupMounts(mounts)
	cg := &cgroups{}
	switch {
	case v2 != "":
		cg.v2, cg.dir = true, filepath.Join(v2, name)
	case v1 != "":
		cg.dir = filepath.Join(v1, name)
	default:
		return nil, errors.New("servers: no cgroup v2 hierarchy and no cgroup v1 cpuacct hierarchy is mounted: the servers' CPU cannot be told apart")
	}
	removeStale(filepath.Dir(cg.dir))
	if err := os.Mkdir(cg.dir, 0o755); err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	return cg, nil
}

// removeStale removes, from the cgroup hierarchy at root, the cgroups of
// benches that no longer run (fwbench-PID-SIZE, as newCgroups names them):
// one killed before it could remove its own. A cgroup that still holds a
// process stays.
func removeStale(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "fwbench-*-*"))
	for _, d := range dirs {
		f := strings.Split(filepath.Base(d), "-")
		pid, err := strconv.Atoi(f[1])
		if err != nil || len(f) != 3 || processRuns(pid) {
			continue
		}
		subs, _ := filepath.Glob(filepath.Join(d, "*", "cgroup.procs"))
		for _, s := range subs {
			_ = syscall.Rmdir(filepath.Dir(s))
		}
		_ = syscall.Rmdir(d)
	}
}

// cgroupMounts finds, in /proc/self/mounts, where cgroup v2 is mounted and
// where cgroup v1's cpuacct controller is; "" for none.
func cgroupMounts(mounts []byte) (v2, cpuacct string) {
	for line := range strings.SplitSeq(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		switch {
		case f[2] == "cgroup2" && v2 == "":
			v2 = f[1]
		case f[2] == "cgroup" && cpuacct == "" && slices.Contains(strings.Split(f[3], ","), "cpuacct"):
			cpuacct = f[1]
		}
	}
	return v2, cpuacct
}

// source names the cgroup file the CPU time is read from.
func (cg *cgroups) source() string {
	if cg.v2 {
		return "cgroup v2, cpu.stat's usage_usec"
	}
	return "cgroup v1, cpuacct.usage"
}

// add makes the cgroup of host and moves pid into it; what pid forks from
// then on is in it too.
func (cg *cgroups) add(host string, pid int) (string, error) {
	dir := filepath.Join(cg.dir, host)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("servers: %w", err)
	}
	cg.subs = append(cg.subs, dir)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return "", fmt.Errorf("servers: host %s: move its sshd into its cgroup: %w", host, err)
	}
	return dir, nil
}

// remove removes the cgroups, once the lab is down: a cgroup goes only once
// no process is in it, and the lab's end a moment before.
func (cg *cgroups) remove() error {
	if cg == nil {
		return nil
	}
	var errs []error
	for _, d := range append(slices.Clone(cg.subs), cg.dir) {
		var err error
		for try := 0; try < 50; try++ {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("servers: remove cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// cgroupUsage is the CPU time (user + system) of everything that ran in
// the cgroup dir, of either version.
func cgroupUsage(dir string) (time.Duration, error) {
	if data, err := os.ReadFile(filepath.Join(dir, "cpu.stat")); err == nil {
		return parseCPUStat(data)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cpuacct.usage"))
	if err != nil {
		return 0, err
	}
	return parseCPUAcct(data)
}

// parseCPUStat reads cgroup v2's cpu.stat: usage_usec.
func parseCPUStat(data []byte) (time.Duration, error) {
	v := field(data, "usage_usec", ' ')
	us, err := strconv.ParseInt(v, 10, 64)
	if err != nil || us < 0 {
		return 0, fmt.Errorf("cpu.stat: no usage_usec in %q", data)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// parseCPUAcct reads cgroup v1's cpuacct.usage: nanoseconds.
func parseCPUAcct(data []byte) (time.Duration, error) {
	ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || ns < 0 {
		return 0, fmt.Errorf("cpuacct.usage: %q is no time", data)
	}
	return time.Duration(ns), nil
}

// errorLine is the first line of err's message.
func errorLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

func mean(v []time.Duration) time.Duration {
	if len(v) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range v {
		sum += d
	}
	return sum / time.Duration(len(v))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
