package lab_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

const site = "../examples/site.toml"

// TestMain runs the lab tests at once, each in a lab of its own (see
// labtest.Main).
func TestMain(m *testing.M) { labtest.Main(m) }

// TestLab is the "done when": a lab of the tutorial's fleet, reached
// from the controller with OpenSSH under strict host-key checking, fresh
// (no rules, everything reachable), and gone without a trace after down.
func TestLab(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	before := snapshot(t)
	l := labtest.Start(t, site)
	held := held(t, l)

	t.Run("status", func(t *testing.T) {
		st, err := l.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !st.Up || len(st.Nodes) != 8 || st.Memory.Processes < 6 || st.Memory.PSS == 0 {
			t.Errorf("status: up %v, %d nodes, memory %+v", st.Up, len(st.Nodes), st.Memory)
		}
	})

	t.Run("ssh", func(t *testing.T) {
		// The tunnel directly on its public address, with nothing but the
		// lab's key and known_hosts on the command line.
		out := labtest.Exec(t, l, "ssh", "-i", l.Identity, "-o", "UserKnownHostsFile="+l.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
			"root@203.0.113.10", "hostname")
		if strings.TrimSpace(out) != "tunnel-1" {
			t.Errorf("ssh to the tunnel ran on %q", out)
		}
		// Every other host through the tunnel on its private address
		// (ssh -J hands -F, not -i and -o, to the jump).
		inv, _ := inventory.Load(site)
		for _, h := range inv.Hosts {
			if h.Name == "tunnel-1" {
				continue
			}
			out := labtest.Exec(t, l, "ssh", "-F", l.SSHConfig, "-J", "203.0.113.10", h.PrivateIP.String(), "hostname")
			if strings.TrimSpace(out) != h.Name {
				t.Errorf("ssh -J to %s (%s) ran on %q", h.Name, h.PrivateIP, out)
			}
		}
		// A host not named in known_hosts under that address is refused.
		_, err := l.Exec(t.Context(), "ssh", "-F", l.SSHConfig, "-o", "HostKeyAlias=198.18.0.31", "203.0.113.10", "true")
		if err == nil {
			t.Error("ssh accepted the tunnel's key for mysql-1's address")
		}
		// sftp works, as on a stock server.
		if _, err := l.Exec(t.Context(), "sh", "-c", `echo ls / | sftp -b - -F "$0" 203.0.113.10`, l.SSHConfig); err != nil {
			t.Errorf("sftp: %v", err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		out := labtest.Exec(t, l, "sh", "-c", `echo "$FWPUSH_IDENTITY $FWPUSH_KNOWN_HOSTS"; ip -o address show dev eth0; ip route`)
		for _, want := range []string{l.Identity + " " + l.KnownHosts, "203.0.113.254/24", "2001:db8::fffe/64"} {
			if !strings.Contains(out, want) {
				t.Errorf("controller lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "default") {
			t.Errorf("the controller has a default route:\n%s", out)
		}
		_, err := l.Exec(t.Context(), "sh", "-c", "echo oops >&2; exit 3")
		var ce *lab.CommandError
		if !errors.As(err, &ce) || !strings.Contains(ce.Error(), "oops") {
			t.Errorf("a failing command: %v, want a CommandError with its stderr", err)
		}
	})

	t.Run("shell", func(t *testing.T) {
		inv, _ := inventory.Load(site)
		for _, h := range inv.Hosts {
			if out := labtest.Shell(t, l, h.Name, "iptables-save"); strings.Contains(out, "-A ") || strings.Contains(out, "DROP") {
				t.Errorf("%s starts with rules:\n%s", h.Name, out)
			}
			out := labtest.Shell(t, l, h.Name, "sh", "-c", "hostname; ls /sys/class/net; ip route")
			want := []string{h.Name, h.PrivateIface}
			if h.HasPublic() {
				want = append(want, h.PublicIface)
			}
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("%s lacks %q:\n%s", h.Name, w, out)
				}
			}
			if strings.Contains(out, "default") {
				t.Errorf("%s has a default route:\n%s", h.Name, out)
			}
		}
		// Each host has its own files.
		labtest.Shell(t, l, "mysql-1", "sh", "-ec", "mkdir -p /var/lib/fwpush /run/fwpush; echo one > /etc/iptables/rules.v4; echo one > /var/lib/fwpush/f; echo one > /tmp/f; echo one > /run/fwpush/f; echo one > /root/f")
		out := labtest.Shell(t, l, "mysql-2", "sh", "-c", "ls -A /etc/iptables /var/lib/fwpush /tmp /run/fwpush; ls /root; true")
		if strings.Contains(out, "rules.v4") || strings.Contains(out, "f\n") {
			t.Errorf("mysql-2 sees mysql-1's files:\n%s", out)
		}
		// The machine's homes, state and the lab's keys stay hidden: a host
		// sees its own directory in the lab and the apt repository only.
		if out := labtest.Shell(t, l, "mysql-2", "sh", "-c", "ls -A /root; cd "+lab.Root+" && find . -maxdepth 3 -type d"); out != ".ssh\n.\n./.cache\n./.cache/apt\n./"+l.Name+"\n./"+l.Name+"/hosts\n./"+l.Name+"/hosts/mysql-2\n" {
			t.Errorf("mysql-2 sees more than its own of /root and %s:\n%s", lab.Root, out)
		}
		if out := labtest.Shell(t, l, "mysql-1", "cat", "/etc/iptables/rules.v4", "/var/lib/fwpush/f", "/tmp/f", "/run/fwpush/f", "/root/f"); out != strings.Repeat("one\n", 5) {
			t.Errorf("mysql-1 reads back %q", out)
		}
		for _, p := range []string{"/etc/iptables/rules.v4", "/var/lib/fwpush/f", "/run/fwpush/f", "/root/f"} {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("%s written in the lab appeared on the machine", p)
			}
		}
		if _, err := l.Shell(t.Context(), "nosuch", "true"); err == nil || !strings.Contains(err.Error(), `no host "nosuch"`) {
			t.Errorf("shell on an unknown host: %v", err)
		}
	})

	t.Run("probe", func(t *testing.T) {
		labtest.Expect(t, l, []labtest.Want{
			{lab.Controller, "203.0.113.10", 22, lab.Reachable},
			{lab.Controller, "203.0.113.11", 80, lab.Reachable}, // refused: nothing listens, nothing filters
			{lab.Controller, "2001:db8::11", 22, lab.Reachable},
			{lab.Controller, "198.18.0.31", 22, lab.Filtered}, // the private network is not on the internet
			{lab.Stranger, "198.18.0.31", 3306, lab.Reachable},
			{lab.Stranger, "198.18.0.10", 22, lab.Reachable},
			{lab.Stranger, "203.0.113.10", 22, lab.Filtered},
			{"tunnel-1", "198.18.0.22", 22, lab.Reachable},
			{"wordpress-1", "198.18.0.31", 3306, lab.Reachable},
			{"haproxy-www", "198.18.0.21", 80, lab.Reachable},
			{"mysql-1", "198.18.0.99", 22, lab.Filtered}, // no one there
		})
		// The target's firewall decides, and a drop costs ProbeTimeout.
		labtest.Shell(t, l, "mysql-1", "iptables", "-w", "-I", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "DROP")
		start := time.Now()
		if got := labtest.Probe(t, l, "wordpress-1", "198.18.0.31", 3306); got != lab.Filtered {
			t.Errorf("probe through a DROP rule: %s", got)
		}
		// Not a measure of speed: the lower bound proves the verdict came
		// from the probe's timeout (a DROP answers nothing), which a
		// loaded machine cannot break; the upper is a hang guard, without
		// Probe's own deadline the kernel would retry the SYN for about
		// two minutes.
		if took := time.Since(start); took < lab.ProbeTimeout || took > 30*time.Second {
			t.Errorf("a filtered probe took %s, want its timeout, %s", took, lab.ProbeTimeout)
		}
		labtest.Shell(t, l, "mysql-1", "iptables", "-w", "-D", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "DROP")
		if _, err := l.Probe(t.Context(), "nosuch", netip.MustParseAddr("198.18.0.31"), 22); err == nil {
			t.Error("probe from an unknown node did not fail")
		}
	})

	t.Run("dial", func(t *testing.T) {
		c, err := l.DialContext(t.Context(), lab.Controller, "tcp", "203.0.113.10:22")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		banner, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.HasPrefix(banner, "SSH-2.0-OpenSSH") {
			t.Errorf("banner %q, %v", banner, err)
		}
	})

	held.goingDown(t)
	if err := l.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkGone(t, l, before, held)
}

// TestRebuild: up on a lab that is up rebuilds it, with new keys and
// processes and nothing of the old one left.
func TestRebuild(t *testing.T) {
	t.Parallel()
	l := labtest.Start(t, site)
	oldKey, _ := os.ReadFile(l.Identity)
	old, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(l.Identity)
	if string(oldKey) == string(newKey) {
		t.Error("rebuild kept the client key")
	}
	for _, n := range old.Nodes {
		if n.PID == 0 {
			continue
		}
		if cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n.PID)); err == nil && strings.Contains(string(cmd), l.Dir) {
			st, _ := l.Status()
			if !slices.ContainsFunc(st.Nodes, func(m lab.NodeStatus) bool { return m.PID == n.PID }) {
				t.Errorf("the first lab's sshd of %s (%d) survives the rebuild", n.Name, n.PID)
			}
		}
	}
	if out := labtest.Exec(t, l, "ssh", "-F", l.SSHConfig, "-J", "203.0.113.10", "198.18.0.32", "hostname"); strings.TrimSpace(out) != "mysql-2" {
		t.Errorf("after rebuild, ssh reached %q", out)
	}
}

// TestUsers is the lab issue's "done when" for users: the inventory's login
// user is a real user on every host, with a uid, home and key of its own and
// the sudo rights the options give; stock OpenSSH reaches it through the
// tunnel (ssh -J), and root cannot log in when root login is off.
func TestUsers(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	inv, err := inventory.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range inv.Hosts {
		h.User = "deploy"
	}
	machinePasswd, _ := os.ReadFile("/etc/passwd")
	const password = "lab-s3cret"
	l := labtest.StartInventory(t, inv, lab.Options{
		Host: lab.HostOptions{NoRootLogin: true},
		Hosts: map[string]lab.HostOptions{
			"mysql-1": {Sudo: lab.SudoPassword, Password: password},
			"mysql-2": {Sudo: lab.SudoNone},
		},
	})
	// ssh runs a command on a host as OpenSSH on the controller would,
	// through the tunnel but for the tunnel itself.
	ssh := func(target, stdin, command string) (stdout, stderr string, err error) {
		args := []string{"-F", l.SSHConfig}
		if !strings.HasSuffix(target, "203.0.113.10") {
			args = append(args, "-J", "203.0.113.10")
		}
		cmd := l.Command(t.Context(), "ssh", append(args, target, command)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
		return out.String(), errb.String(), err
	}
	for _, h := range inv.Hosts {
		addr := h.PrivateIP.String()
		if h.Name == "tunnel-1" {
			addr = "203.0.113.10"
		}
		// One session each: who the user is, then sudo without a password
		// (its stderr apart: nothing there means sudo found the host's
		// name in its /etc/hosts).
		out, errs, err := ssh(addr, "", `id -un; id -u; echo "$HOME"; stat -c %U ~/.ssh/authorized_keys; id -nG | grep -qw sudo && echo in-sudo-group; echo --; sudo -n id -u`)
		who, sudo, _ := strings.Cut(out, "--\n")
		if f := strings.Fields(who); len(f) != 4 || f[0] != "deploy" || f[1] == "0" || f[2] != "/home/deploy" || f[3] != "deploy" {
			t.Errorf("%s: deploy's identity: %q, %v %s", h.Name, who, err, errs)
		}
		switch h.Name {
		case "mysql-1", "mysql-2":
			if err == nil || sudo != "" || !strings.Contains(errs, "a password is required") {
				t.Errorf("%s: sudo -n without a password: %q, %v %s", h.Name, sudo, err, errs)
			}
		default:
			if err != nil || sudo != "0\n" || errs != "" {
				t.Errorf("%s: passwordless sudo: %q, %v, stderr %q", h.Name, sudo, err, errs)
			}
		}
	}
	for _, addr := range []string{"203.0.113.10", "198.18.0.31"} {
		if _, errs, err := ssh("root@"+addr, "", "true"); err == nil || !strings.Contains(errs, "Permission denied") {
			t.Errorf("%s: root logged in with root login off: %v %s", addr, err, errs)
		}
	}
	if out, errs, err := ssh("198.18.0.31", password+"\n", "sudo -S -p '' id -u"); err != nil || out != "0\n" {
		t.Errorf("mysql-1: sudo with the password: %q, %v %s", out, err, errs)
	}
	if out, errs, err := ssh("198.18.0.31", "wrong\n", "sudo -S -p '' id -u"); err == nil || !strings.Contains(errs, "incorrect password") {
		t.Errorf("mysql-1: sudo with a wrong password: %q, %v %s", out, err, errs)
	}
	if out, errs, err := ssh("198.18.0.32", "", "ls /etc/sudoers.d/fwpush-lab; sudo -n true"); err == nil {
		t.Errorf("mysql-2: a user without sudo rights ran sudo: %q %s", out, errs)
	}
	// root's key is not authorized, and the machine has not changed.
	if out := labtest.Shell(t, l, "mysql-1", "sh", "-c", "ls -A /root; ls /home"); out != "deploy\n" {
		t.Errorf("mysql-1's /root and /home: %q, want only deploy's home", out)
	}
	if now, _ := os.ReadFile("/etc/passwd"); string(now) != string(machinePasswd) {
		t.Error("the machine's /etc/passwd changed")
	}
}

// TestOwnFilesystem is the lab issue's "done when" for filesystems: a
// package installed on one host (from the lab's local repository: the hosts
// have no network) and files added and deleted there change neither the
// machine nor the other hosts; boot runs what the host enabled; down leaves
// no overlay or mount behind.
//
// A host's filesystem is an overlay of the machine's, so what another host
// must show is the machine's own state, whatever the machine has installed:
// the package installed is one the machine lacks and nothing of fwpush's
// installs (nftables, which the boot loads, may well be installed here).
func TestOwnFilesystem(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	pkg, program := absentPackage(t)
	before := snapshot(t)
	machineStatus, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	// What a host sees of the packages and files at stake; the machine
	// runs it too.
	view := "for p in " + pkg + " nftables; do printf '%s: ' $p; dpkg-query -W -f='${Status}\\n' $p 2>/dev/null || echo absent; done; " +
		"for f in " + program + " /usr/sbin/nft; do [ -e $f ] && echo $f; done; echo ---; cat /etc/nftables.conf 2>/dev/null; true"
	machineView, err := exec.Command("sh", "-c", view).Output()
	if err != nil {
		t.Fatal(err)
	}
	machineBootsNft := bootEnables("/", "nftables")
	machineWants, _ := filepath.Glob("/etc/systemd/system/*.wants/nftables.service")

	const conf = "table inet fwplab {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 9999 drop\n\t}\n}\n"
	l := labtest.Start(t, site, lab.Options{Hosts: map[string]lab.HostOptions{
		"mysql-1": {Packages: []string{pkg, "nftables"}, Files: map[string]string{"/etc/nftables.conf": conf}},
	}})
	h := held(t, l)

	want := pkg + ": install ok installed\nnftables: install ok installed\n" + program + "\n/usr/sbin/nft\n---\n" + conf
	if out := labtest.Shell(t, l, "mysql-1", "sh", "-c", view); out != want {
		t.Errorf("mysql-1 after installing %s and nftables, keeping its own nftables.conf:\n%s\nwant:\n%s", pkg, out, want)
	}
	if other := labtest.Shell(t, l, "mysql-2", "sh", "-c", view); other != string(machineView) {
		t.Errorf("mysql-2 is not as the machine is: it has mysql-1's package or file?\n%s\nthe machine:\n%s", other, machineView)
	}
	// apt in a host knows the local repository only.
	if out := labtest.Shell(t, l, "mysql-2", "sh", "-c", "apt-get -qq update && apt-cache policy"); !strings.Contains(out, "file:"+lab.Root+"/.cache/apt ./") || strings.Contains(out, "http") {
		t.Errorf("mysql-2's apt sources:\n%s", out)
	}
	// Nor does an install there rebuild man-db's index (see writeRootfs).
	if out := labtest.Shell(t, l, "mysql-2", "sh", "-c", "ls /var/lib/man-db/auto-update 2>/dev/null; true"); out != "" {
		t.Errorf("mysql-2 rebuilds man-db's index after each install: %s", out)
	}

	labtest.Shell(t, l, "mysql-1", "sh", "-ec", "rm /etc/debian_version; echo added > /usr/local/bin/fwplab-added; systemctl enable nftables")
	if out := labtest.Shell(t, l, "mysql-2", "sh", "-c", "cat /etc/debian_version; ls /usr/local/bin"); out == "" || strings.Contains(out, "fwplab-added") {
		t.Errorf("mysql-2 sees mysql-1's changes:\n%s", out)
	}
	// The boot loads the nftables.conf mysql-1 enabled; mysql-2 boots as
	// the machine would.
	if log := labtest.Reboot(t, l, "mysql-1"); !strings.Contains(log, "boot: nft -f /etc/nftables.conf") {
		t.Errorf("mysql-1's boot did not load nftables.conf:\n%s", log)
	}
	if out := labtest.Shell(t, l, "mysql-1", "nft", "list", "ruleset"); !strings.Contains(out, "tcp dport 9999 drop") {
		t.Errorf("mysql-1's ruleset after reboot:\n%s", out)
	}
	if log := labtest.Reboot(t, l, "mysql-2"); strings.Contains(log, "boot: nft") != machineBootsNft {
		t.Errorf("mysql-2's boot (the machine's boots nftables: %v):\n%s", machineBootsNft, log)
	}

	for _, p := range []string{"/etc/debian_version"} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("deleted in a host, gone from the machine: %v", err)
		}
	}
	if _, err := os.Lstat("/usr/local/bin/fwplab-added"); err == nil {
		t.Error("/usr/local/bin/fwplab-added, made in a host, appeared on the machine")
	}
	if wants, _ := filepath.Glob("/etc/systemd/system/*.wants/nftables.service"); !slices.Equal(wants, machineWants) {
		t.Errorf("nftables enabled in a host, and on the machine: %v, was %v", wants, machineWants)
	}
	h.goingDown(t)
	if err := l.Down(context.Background()); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.ReadFile("/var/lib/dpkg/status"); string(now) != string(machineStatus) {
		t.Error("the machine's dpkg status changed")
	}
	checkGone(t, l, before, h)
}

// absentPackage is a small package (it needs nothing but what a Debian
// machine has) that this machine has not installed and no part of fwpush
// installs, and the program it installs, for a lab host to install from
// the lab's repository: whatever a host then shows of it came from the
// install in that host.
func absentPackage(t *testing.T) (name, program string) {
	t.Helper()
	for _, p := range []struct{ name, program string }{{"hello", "/usr/bin/hello"}, {"sl", "/usr/games/sl"}} {
		out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", p.name).Output()
		if _, err := os.Stat(p.program); !strings.HasSuffix(string(out), "ok installed") && err != nil {
			return p.name, p.program
		}
	}
	t.Skip("the machine has every package this test would install in a host")
	return "", ""
}

// bootEnables tells whether a boot of the lab (boot.sh) would start
// service on the filesystem at root: it is enabled (a systemd wants link,
// an rcS.d or rc2.d start link) and, for nftables, nft and its
// configuration are there.
func bootEnables(root, service string) bool {
	links, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*.wants", service+".service"))
	for _, rc := range []string{"etc/rcS.d", "etc/rc2.d"} {
		more, _ := filepath.Glob(filepath.Join(root, rc, "S[0-9][0-9]"+service))
		links = append(links, more...)
	}
	if len(links) == 0 {
		return false
	}
	if service != "nftables" {
		return true
	}
	_, errConf := os.Stat(filepath.Join(root, "etc/nftables.conf"))
	_, errNft := exec.LookPath("nft")
	return errConf == nil && errNft == nil
}

// TestTwoLabs: two labs of the same inventory at once stay apart, and
// taking one down leaves the other working and holding nothing of it.
func TestTwoLabs(t *testing.T) {
	t.Parallel()
	before := snapshot(t)
	a := labtest.Start(t, site)
	b := labtest.Start(t, site)
	heldA := held(t, a)
	labtest.Shell(t, a, "mysql-1", "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "DROP")
	if got := labtest.Probe(t, b, "wordpress-1", "198.18.0.31", 3306); got != lab.Reachable {
		t.Errorf("a rule in lab %s filters lab %s: %s", a.Name, b.Name, got)
	}
	heldA.goingDown(t)
	if err := a.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkGone(t, a, before, heldA)
	if out := labtest.Exec(t, b, "ssh", "-F", b.SSHConfig, "-J", "203.0.113.10", "198.18.0.31", "hostname"); strings.TrimSpace(out) != "mysql-1" {
		t.Errorf("lab %s after %s went down: ssh reached %q", b.Name, a.Name, out)
	}
}

// TestLabsAtOnce: labs come up and go down side by side, each under its
// own lock, and stay apart: two labs come up while a third goes down, and
// two Ups of one name at once end with one lab of that name, working.
func TestLabsAtOnce(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	before := snapshot(t)
	inv, err := inventory.Load(site)
	if err != nil {
		t.Fatal(err)
	}
	newLab := func(name string) *lab.Lab {
		l, err := lab.New(inv, name, lab.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Down(context.Background()) })
		return l
	}
	gone := labtest.Start(t, site)
	heldGone := held(t, gone)
	a, b := newLab(labtest.Name()), newLab(labtest.Name())
	twin := labtest.Name()
	c1, c2 := newLab(twin), newLab(twin)
	steps := map[string]func(context.Context) error{
		"down " + gone.Name:  gone.Down,
		"up " + a.Name:       a.Up,
		"up " + b.Name:       b.Up,
		"up " + twin + " #1": c1.Up,
		"up " + twin + " #2": c2.Up,
	}
	heldGone.goingDown(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for what, step := range steps {
		wg.Go(func() {
			if err := step(t.Context()); err != nil {
				mu.Lock()
				defer mu.Unlock()
				t.Errorf("%s: %v", what, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	checkGone(t, gone, before, heldGone)
	for _, l := range []*lab.Lab{a, b, c1} {
		st, err := l.Status()
		if err != nil {
			t.Fatal(err)
		}
		if !st.Up || st.Memory.Processes != len(l.Hosts) {
			t.Errorf("lab %s: up %v with %d processes, want %d sshd", l.Name, st.Up, st.Memory.Processes, len(l.Hosts))
		}
		if out := labtest.Exec(t, l, "ssh", "-F", l.SSHConfig, "-J", "203.0.113.10", "198.18.0.31", "hostname"); strings.TrimSpace(out) != "mysql-1" {
			t.Errorf("lab %s: ssh reached %q", l.Name, out)
		}
	}
	labtest.Shell(t, a, "mysql-1", "iptables", "-w", "-A", "INPUT", "-p", "tcp", "--dport", "3306", "-j", "DROP")
	if got := labtest.Probe(t, b, "wordpress-1", "198.18.0.31", 3306); got != lab.Reachable {
		t.Errorf("a rule in lab %s filters lab %s: %s", a.Name, b.Name, got)
	}
	for _, l := range []*lab.Lab{a, b, c1} {
		h := held(t, l)
		h.goingDown(t)
		if err := l.Down(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkGone(t, l, before, h)
	}
}

// TestOddInventory: interface names, ports and users other than the
// defaults, private addresses in two networks, public and private ranges
// that overlap.
func TestOddInventory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "odd.toml")
	writeFile(t, path, `[ssh]
tunnel = "bastion"
port   = 2222

[interfaces]
public  = "ens3"
private = "ens4"

[hosts.bastion]
role       = "tunnel"
public_ip  = "198.51.100.5"
private_ip = "198.18.0.5"
user       = "admin"

[hosts.web]
role         = "web"
public_ip    = "198.51.100.6"
private_ip   = "198.18.1.6"
private_iface = "vlan.42"
port         = 22

[hosts.db]
role       = "db"
private_ip = "198.51.100.7"

[roles.tunnel]
template   = "tunnel"
public_tcp = [22]

[roles.web]
template   = "public"
public_tcp = [80]

[roles.db]
template = "private"
`)
	l := labtest.Start(t, path)
	known, _ := os.ReadFile(l.KnownHosts)
	for _, want := range []string{"[198.51.100.5]:2222,[198.18.0.5]:2222 ssh-ed25519 ", "198.51.100.6,198.18.1.6 ssh-ed25519 "} {
		if !strings.Contains(string(known), want) {
			t.Errorf("known_hosts lacks %q:\n%s", want, known)
		}
	}
	if out := labtest.Exec(t, l, "ssh", "-F", l.SSHConfig, "198.51.100.5", "echo $USER; hostname"); out != "admin\nbastion\n" {
		t.Errorf("ssh as admin to bastion:2222 printed %q", out)
	}
	for _, addr := range []string{"198.18.1.6", "198.51.100.7"} {
		if out := labtest.Exec(t, l, "ssh", "-F", l.SSHConfig, "-J", "198.51.100.5", addr, "hostname"); out == "" {
			t.Errorf("ssh -J to %s printed nothing", addr)
		}
	}
	if out := labtest.Shell(t, l, "web", "ls", "/sys/class/net"); !strings.Contains(out, "ens3") || !strings.Contains(out, "vlan.42") {
		t.Errorf("web's interfaces:\n%s", out)
	}
	labtest.Expect(t, l, []labtest.Want{
		{"bastion", "198.18.1.6", 22, lab.Reachable},   // another private network
		{"bastion", "198.51.100.7", 22, lab.Reachable}, // a private address in the public range
		{"web", "198.51.100.7", 22, lab.Reachable},     //  … from another segment's address range
		{lab.Controller, "198.51.100.6", 22, lab.Reachable},
		{lab.Controller, "198.51.100.7", 22, lab.Filtered}, // same range, other segment
		{lab.Stranger, "198.51.100.5", 22, lab.Filtered},
	})
}

// TestCrashedLab: down cleans up after killed processes, strays left
// running in the lab, and a lab whose up was killed half-way.
func TestCrashedLab(t *testing.T) {
	t.Parallel()
	t.Run("killed sshd and strays", func(t *testing.T) {
		t.Parallel()
		before := snapshot(t)
		l := labtest.Start(t, site)
		h := held(t, l)
		st, _ := l.Status()
		for _, n := range st.Nodes {
			if n.Name == "tunnel-1" {
				syscall.Kill(n.PID, syscall.SIGKILL)
			}
		}
		// A detached process on a host (such as a rollback timer) and one
		// on the controller.
		for _, start := range []func() (*exec.Cmd, error){
			func() (*exec.Cmd, error) { return l.HostCommand(context.Background(), "mysql-1", "sleep", "600") },
			func() (*exec.Cmd, error) { return l.Command(context.Background(), "sleep", "600"), nil },
		} {
			cmd, err := start()
			if err != nil {
				t.Fatal(err)
			}
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go cmd.Wait()
		}
		waitFor(t, func() bool {
			st, _ := l.Status()
			return !st.Up
		})
		if _, err := l.Shell(t.Context(), "tunnel-1", "true"); err == nil || !strings.Contains(err.Error(), "sshd is not running") {
			t.Errorf("shell on a host whose sshd died: %v", err)
		}
		h.goingDown(t)
		if err := lab.Down(t.Context(), l.Name); err != nil {
			t.Fatal(err)
		}
		checkGone(t, l, before, h)
	})

	t.Run("up killed half-way", func(t *testing.T) {
		t.Parallel()
		labtest.Require(t)
		before := snapshot(t)
		name := labtest.Name()
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperUp$")
		cmd.Env = append(os.Environ(), "FWPUSH_LAB_HELPER="+name+","+labtest.Fleet(t, 60))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Should the test stop early, the helper and its lab go all the same.
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = lab.Down(context.Background(), name)
		})
		// Kill it once the first sshd is up, long before the 60th.
		pids := filepath.Join(lab.Root, name, "hosts", "*", "sshd.pid")
		waitFor(t, func() bool {
			m, _ := filepath.Glob(pids)
			return len(m) > 0
		})
		cmd.Process.Kill()
		cmd.Wait()
		m, _ := filepath.Glob(pids)
		st, err := lab.StatusOf(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("killed up with %d of 60 sshd started; status up=%v", len(m), st.Up)
		if st.Up {
			t.Error("status says a half-built lab is up")
		}
		if err := lab.Down(t.Context(), name); err != nil {
			t.Fatal(err)
		}
		checkGone(t, &lab.Lab{Name: name, Dir: filepath.Join(lab.Root, name)}, before, nsHeld{})
	})

	t.Run("up cancelled", func(t *testing.T) {
		t.Parallel()
		labtest.Require(t)
		inv, err := inventory.Load(labtest.Fleet(t, 60))
		if err != nil {
			t.Fatal(err)
		}
		l, err := lab.New(inv, labtest.Name(), lab.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		err = l.Up(ctx)
		t.Cleanup(func() { l.Down(context.Background()) })
		if err == nil {
			t.Skip("up finished within 200ms: nothing to interrupt")
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("cancelled up: %v", err)
		}
		st, err := l.Status()
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Nodes) > 0 || len(st.Leftovers) > 0 {
			t.Errorf("a cancelled up left %d nodes, leftovers %q", len(st.Nodes), st.Leftovers)
		}
	})
}

// TestHelperUp is the process TestCrashedLab kills half-way through up.
func TestHelperUp(t *testing.T) {
	arg := os.Getenv("FWPUSH_LAB_HELPER")
	if arg == "" {
		t.Skip("helper process for TestCrashedLab")
	}
	name, path, _ := strings.Cut(arg, ",")
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(inv, name, lab.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Up(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Minute)
}

func TestDownOfNothing(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	before := snapshot(t)
	name := labtest.Name()
	for range 2 {
		if err := lab.Down(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	checkGone(t, &lab.Lab{Name: name, Dir: filepath.Join(lab.Root, name)}, before, nsHeld{})
	if _, err := lab.Open(name); !errors.Is(err, lab.ErrNotUp) {
		t.Errorf("Open of a lab that is down: %v", err)
	}
}

// machine is what a lab may change on the machine and must give back.
type machine struct {
	netns  []string // named network namespaces
	mounts []string // this mount namespace's mounts: "point fstype source root"
	dirs   map[string]bool
}

func snapshot(t *testing.T) machine {
	t.Helper()
	var m machine
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		m.netns = append(m.netns, e.Name())
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		i := slices.Index(f, "-")
		if i < 0 || len(f) < i+3 {
			continue
		}
		m.mounts = append(m.mounts, strings.Join([]string{f[4], f[i+1], f[i+2], f[3]}, " "))
	}
	m.dirs = map[string]bool{}
	for _, d := range []string{"/etc/iptables", "/var/lib/fwpush", "/run/netns"} {
		_, err := os.Stat(d)
		m.dirs[d] = err == nil
	}
	return m
}

// nsHeld is what a lab held while it was up: the network namespaces of
// every node and the mount namespaces of every sshd, by inode, and, once
// set (goingDown), the moment it began to go down: a process that starts
// later is not the lab's (see nsRefs).
type nsHeld struct {
	net, mnt []uint64
	down     uint64 // clock ticks since boot, as /proc/PID/stat's start time
}

// goingDown marks the moment the lab begins to go down.
func (h *nsHeld) goingDown(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, _, _ := strings.Cut(string(data), " ")
	secs, err := strconv.ParseFloat(up, 64)
	if err != nil {
		t.Fatal(err)
	}
	h.down = uint64(secs * ticksPerSecond)
}

// ticksPerSecond is the unit of /proc/PID/stat's start time (USER_HZ).
const ticksPerSecond = 100

func held(t *testing.T, l *lab.Lab) nsHeld {
	t.Helper()
	var h nsHeld
	for _, n := range append([]*lab.Node{l.Controller, l.Stranger}, l.Hosts...) {
		h.net = append(h.net, inode(t, "/run/netns/"+n.Netns))
	}
	st, err := l.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.PID != 0 {
			h.mnt = append(h.mnt, inode(t, fmt.Sprintf("/proc/%d/ns/mnt", n.PID)))
		}
	}
	return h
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// checkGone asserts that a lab that was taken down left nothing: no
// directory, namespace name, mount, process or reference anywhere to its
// namespaces (a process in them, a mount of them in any process's mount
// namespace, an open descriptor). Other labs may come and go meanwhile
// (tests of other packages run at once): what is theirs is left out.
func checkGone(t *testing.T, l *lab.Lab, before machine, h nsHeld) {
	t.Helper()
	after := snapshot(t)
	ours := func(s string) bool {
		return strings.Contains(s, "fwp-"+l.Name+".") || strings.Contains(s, "fwp-"+l.Name+"_") || strings.Contains(s, l.Dir)
	}
	others := func(s string) bool { return strings.Contains(s, "fwp-") && !ours(s) }
	if _, err := os.Stat(l.Dir); err == nil {
		t.Errorf("%s is left", l.Dir)
	}
	for _, ns := range after.netns {
		if !slices.Contains(before.netns, ns) && !others(ns) {
			t.Errorf("namespace %s is left", ns)
		}
	}
	otherLabs := slices.ContainsFunc(after.netns, others)
	for _, m := range after.mounts {
		if slices.Contains(before.mounts, m) || others(m) || strings.HasPrefix(m, "/run/netns ") && otherLabs {
			continue
		}
		t.Errorf("mount %s is left", m)
	}
	// What stays in the state root is the local apt repository's cache,
	// and other labs' (tests of other packages run at once).
	ents, _ := os.ReadDir(lab.Root)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") && e.Name() != ".cache" && e.Name() != ".machine.json" {
			t.Errorf("%s/%s is left", lab.Root, e.Name())
		}
		if !strings.HasPrefix(e.Name(), ".") {
			otherLabs = true
		}
	}
	if !otherLabs {
		if _, err := os.Stat(filepath.Join(lab.Root, ".machine.json")); err == nil {
			t.Errorf("%s/.machine.json is left with no lab up", lab.Root)
		}
		for d, was := range before.dirs {
			if after.dirs[d] != was {
				t.Errorf("%s existed before up: %v, after down: %v", d, was, after.dirs[d])
			}
		}
	}
	nets, mnts := map[uint64]bool{}, map[uint64]bool{}
	for _, ino := range h.net {
		nets[ino] = true
	}
	for _, ino := range h.mnt {
		mnts[ino] = true
	}
	for _, ref := range nsRefs(nets, mnts, h.down, others) {
		t.Errorf("left: %s", ref)
	}
	// No mount namespace of any process holds a mount of the lab's
	// directory: the hosts' overlays went with their namespaces.
	for _, p := range procs() {
		mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", p.pid))
		for line := range strings.Lines(string(mi)) {
			if strings.Contains(line, l.Dir+"/") {
				t.Errorf("mount left in the mount namespace of process %d (%s): %s", p.pid, p.cmdline, strings.TrimSpace(line))
			}
		}
	}
	for _, p := range procs() {
		if strings.Contains(p.cmdline, l.Dir+"/") {
			t.Errorf("process %d is left: %s", p.pid, p.cmdline)
		}
	}
}

type procInfo struct {
	pid     int
	cmdline string
	start   uint64 // clock ticks after boot (/proc/PID/stat's 22nd field)
}

// procs lists the machine's live processes (zombies left out: on a
// machine whose init does not reap, the lab's killed sshd stay as zombies
// of init, holding nothing but their pid).
func procs() []procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
			continue
		}
		var start uint64
		if f := strings.Fields(string(stat[i+2:])); len(f) > 19 { // f[0] is field 3, the state
			start, _ = strconv.ParseUint(f[19], 10, 64)
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		out = append(out, procInfo{pid, strings.ReplaceAll(string(cmd), "\x00", " "), start})
	}
	return out
}

// nsRefs lists every reference to the given network and mount namespaces
// (by inode): processes in them, mounts of them in any mount namespace,
// open descriptors. Namespace inodes are reused as soon as they are freed,
// so an inode that belongs to a namespace of another lab (tests of other
// packages run at once), before or after the search, is that lab's, not a
// leftover. A process is another lab's when it runs from the labs' root
// (their sshd) or when others says so of its command line (a lab coming
// up runs `ip -n fwp-NAME_switch ...` in a mount namespace of its own,
// which can have the number one of this lab's had). A process that
// started after down (clock ticks after boot; 0: not known) is not this
// lab's either: another lab's host booting (its boot script, before its
// sshd) gets a mount namespace whose number may be one this lab freed.
func nsRefs(nets, mnts map[uint64]bool, down uint64, others func(cmdline string) bool) []string {
	type ref struct {
		kind string
		ino  uint64
		msg  string
	}
	// What other labs hold, before the search and after: their named
	// network namespaces and their sshd's mount namespaces.
	theirs := map[string]map[uint64]bool{"net": {}, "mnt": {}}
	othersHold := func() {
		ents, _ := os.ReadDir("/run/netns")
		for _, e := range ents {
			var st syscall.Stat_t
			if strings.HasPrefix(e.Name(), "fwp-") && syscall.Stat("/run/netns/"+e.Name(), &st) == nil {
				theirs["net"][st.Ino] = true
			}
		}
		for _, p := range procs() {
			if strings.Contains(p.cmdline, lab.Root) || others(p.cmdline) {
				if ino, ok := nsOf(fmt.Sprintf("/proc/%d/ns/mnt", p.pid)); ok {
					theirs["mnt"][ino] = true
				}
			}
		}
	}
	othersHold()
	var refs []ref
	for _, p := range procs() {
		if down != 0 && p.start > down {
			continue
		}
		for kind, inodes := range map[string]map[uint64]bool{"net": nets, "mnt": mnts} {
			if ino, ok := nsOf(fmt.Sprintf("/proc/%d/ns/%s", p.pid, kind)); ok && inodes[ino] {
				refs = append(refs, ref{kind, ino, fmt.Sprintf("process %d in %s namespace %d: %s", p.pid, kind, ino, p.cmdline)})
			}
		}
		if mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", p.pid)); err == nil {
			for ino := range nets {
				if strings.Contains(string(mi), fmt.Sprintf("net:[%d]", ino)) {
					refs = append(refs, ref{"net", ino, fmt.Sprintf("mount of net namespace %d in the mount namespace of process %d (%s)", ino, p.pid, p.cmdline)})
				}
			}
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
		for _, fd := range fds {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.pid, fd.Name()))
			for kind, inodes := range map[string]map[uint64]bool{"net": nets, "mnt": mnts} {
				if ino, ok := parseNs(link, kind); ok && inodes[ino] {
					refs = append(refs, ref{kind, ino, fmt.Sprintf("descriptor %s of process %d on %s namespace %d", fd.Name(), p.pid, kind, ino)})
				}
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	othersHold()
	var out []string
	for _, r := range refs {
		if !theirs[r.kind][r.ino] {
			out = append(out, r.msg)
		}
	}
	return out
}

// nsOf returns the inode of the namespace /proc/PID/ns/KIND links to.
func nsOf(link string) (uint64, bool) {
	s, err := os.Readlink(link)
	if err != nil {
		return 0, false
	}
	return parseNs(s, filepath.Base(link))
}

// parseNs parses a namespace link such as "net:[4026531840]".
func parseNs(s, kind string) (uint64, bool) {
	rest, ok := strings.CutPrefix(s, kind+":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, false
	}
	ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
	return ino, err == nil
}

// waitFor waits until cond holds: a bound for a test that fails, long
// enough for a loaded machine, where a lab's up may wait for others'.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkUp measures up and down of labs of 6, 50 and 150 hosts, and
// what a lab that is up costs in memory (as lab status reports it).
func BenchmarkUp(b *testing.B) {
	labtest.Require(b)
	for _, n := range []int{6, 50, 150} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			inv, err := inventory.Load(labtest.Fleet(b, n))
			if err != nil {
				b.Fatal(err)
			}
			l, err := lab.New(inv, labtest.Name(), lab.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { l.Down(context.Background()) })
			var up, down time.Duration
			var mem lab.Memory
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := l.Up(context.Background()); err != nil {
					b.Fatal(err)
				}
				up += time.Since(start)
				st, err := l.Status()
				if err != nil || !st.Up {
					b.Fatalf("status after up: %v, %+v", err, st)
				}
				mem = st.Memory
				start = time.Now()
				if err := l.Down(context.Background()); err != nil {
					b.Fatal(err)
				}
				down += time.Since(start)
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "s/up")
			b.ReportMetric(down.Seconds()/float64(b.N), "s/down")
			b.ReportMetric(float64(mem.PSS)/(1<<20), "MiB-PSS")
			b.ReportMetric(float64(mem.RSS)/(1<<20), "MiB-RSS")
			b.ReportMetric(0, "ns/op")
		})
	}
}
