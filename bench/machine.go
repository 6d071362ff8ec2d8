package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine is what the numbers were measured on.
type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	FwPush    string  `json:"fwpush"`
	OpenSSH   string  `json:"openssh"`
	Iptables  string  `json:"iptables"`
	IPSet     string  `json:"ipset,omitempty"`
	Ansible   string  `json:"ansible,omitempty"`
	Mitogen   string  `json:"mitogen,omitempty"`
}

// describeMachine collects the machine and the versions of the tools in
// play; what cannot be found is left empty.
func describeMachine(ctx context.Context, cfg Config) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = field(data, "model name", ':')
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(field(data, "MemTotal", ':'), " kB"), 64)
		m.MemoryGiB = kb / (1 << 20)
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Sysname[:]) + " " + unix.ByteSliceToString(u.Release[:])
	}
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		m.OS = strings.Trim(field(data, "PRETTY_NAME", '='), `"`)
	}
	m.FwPush = firstLine(ctx, cfg.FwPush, "version")
	m.OpenSSH = firstLine(ctx, "ssh", "-V")
	m.Iptables = firstLine(ctx, "iptables", "--version")
	m.IPSet = firstLine(ctx, "ipset", "version")
	if slices.Contains(cfg.Tools, Ansible) || slices.Contains(cfg.Tools, Mitogen) {
		m.Ansible = firstLine(ctx, "ansible-playbook", "--version")
	}
	if slices.Contains(cfg.Tools, Mitogen) {
		m.Mitogen = "ansible-mitogen " + firstLine(ctx, "dpkg-query", "-W", "-f=${Version}", "ansible-mitogen")
	}
	return m
}

// field returns the value of the first "key SEP value" line.
func field(data []byte, key string, sep byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), string(sep))
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// firstLine is the first line a command prints, on stdout or stderr
// (ssh -V uses stderr).
func firstLine(ctx context.Context, name string, arg ...string) string {
	out, err := exec.CommandContext(ctx, name, arg...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// packages are the Debian packages the chosen tools and the plot need
// beyond what make test installs.
func packages(cfg Config) []string {
	var pkgs []string
	if slices.Contains(cfg.Tools, Ansible) || slices.Contains(cfg.Tools, Mitogen) {
		pkgs = append(pkgs, "ansible-core")
	}
	if slices.Contains(cfg.Tools, Mitogen) {
		pkgs = append(pkgs, "ansible-mitogen")
	}
	if cfg.Plot != "" {
		pkgs = append(pkgs, "gnuplot-nox")
	}
	if len(cfg.ServerSizes) > 0 {
		pkgs = append(pkgs, "strace") // the servers part counts forks with it
	}
	return pkgs
}

// prerequisites installs with apt-get the packages cfg needs that are
// missing, when cfg.Install allows it. (lab.Up installs the lab's own.)
func prerequisites(ctx context.Context, cfg Config) error {
	var missing []string
	for _, p := range packages(cfg) {
		out, _ := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Status}", p).Output()
		if !strings.Contains(string(out), "install ok installed") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !cfg.Install {
		return fmt.Errorf("missing packages %s: install them, or let the bench do it (-install)", strings.Join(missing, " "))
	}
	fmt.Fprintf(cfg.Log, "bench: installing %s\n", strings.Join(missing, " "))
	apt := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w: %s", strings.Join(args, " "), err, tail(out))
		}
		return nil
	}
	install := append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)
	if err := apt(install...); err != nil {
		// A fresh machine often has no package lists yet.
		if uerr := apt("update", "-qq"); uerr != nil {
			return fmt.Errorf("%w (and %v)", err, uerr)
		}
		return apt(install...)
	}
	return nil
}
