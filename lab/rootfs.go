package lab

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A host's root filesystem is an overlay: the machine's / is the lower layer,
// read-only, and fs/HOST/upper in the lab's directory the upper one, where
// every change the host makes lands. Before the host comes up the lab writes
// into the upper layer what makes it a server of its own: its accounts, its
// hostname, its apt sources, empty directories in place of the machine's
// private ones. Directories created in the upper layer take the mode and
// owner of the machine's, because overlayfs shows a directory present in
// both layers with the upper one's attributes.

// fsDir holds a host's upper layer, overlayfs's work directory and the
// mount point of its root.
func (l *Lab) fsDir(n *Node) string { return filepath.Join(l.Dir, "fs", n.Name) }

// Overlayfs's markers in an upper layer: an opaque directory hides the lower
// directory's entries, a whiteout (a 0/0 character device) a lower file.
const opaqueXattr = "trusted.overlay.opaque"

// privateDirs are the machine's directories a host must not see: its homes
// (with their keys and credentials), its sudo rules (a host's are the
// lab's), firewall files and fwpush state. Each host starts with them
// empty, as a fresh server.
var privateDirs = []string{"/root", "/home", "/etc/sudoers.d", "/etc/iptables", "/var/lib/fwpush"}

// systemDirs must be on the machine's root filesystem: a host's lower
// layer is that filesystem alone, without what is mounted on it, so a
// separate /var would leave the hosts without dpkg's database.
var systemDirs = []string{"/etc", "/usr", "/var", "/var/lib", "/var/lib/dpkg"}

// checkRootfs reports whether the machine's / can be the hosts' lower layer.
func checkRootfs() error {
	for _, d := range systemDirs {
		if isMountpoint(d) {
			return fmt.Errorf("%s is a filesystem of its own: the lab's hosts see only the machine's root filesystem (overlayfs does not cross mounts)", d)
		}
	}
	return nil
}

// aptSourcesList is the only apt source of a host: the lab's local
// repository, a flat file: repository that needs no signature.
func aptSourcesList() string {
	return "# fwpush lab: the local repository, the only source (no network)\n" +
		"deb [trusted=yes] file:" + repoDir + " ./\n"
}

// account is a login user on the lab's hosts.
type account struct {
	name     string
	uid, gid int
	home     string
	// machine says the machine has the user already: its entry is kept.
	machine bool
}

// accounts are the lab's login users, and the machine's account files with
// the users the machine lacks appended, written into every host that logs
// in as one of them.
type accounts struct {
	users                          map[string]account
	passwd, group, shadow, gshadow []byte
}

// firstUID is where Debian starts the uids (and gids) of people.
const firstUID = 1000

// planAccounts makes an account for every login user but root: the
// machine's entry when it has the user, otherwise a new user with the first
// uid and gid at or above 1000 that the machine does not use, a home in
// /home, bash (or sh) and no password (logins are by key).
func planAccounts(users []string) (*accounts, error) {
	a := &accounts{users: map[string]account{}}
	var err error
	if a.passwd, err = os.ReadFile("/etc/passwd"); err != nil {
		return nil, err
	}
	if a.group, err = os.ReadFile("/etc/group"); err != nil {
		return nil, err
	}
	if a.shadow, err = os.ReadFile("/etc/shadow"); err != nil {
		return nil, err
	}
	a.gshadow, _ = os.ReadFile("/etc/gshadow") // optional
	usedUID, usedGID := map[int]bool{}, map[int]bool{}
	existing := map[string]account{}
	for _, f := range entries(a.passwd) {
		if len(f) < 7 {
			continue
		}
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		usedUID[uid] = true
		existing[f[0]] = account{name: f[0], uid: uid, gid: gid, home: f[5], machine: true}
	}
	groups := map[string]bool{}
	for _, f := range entries(a.group) {
		if len(f) >= 3 {
			gid, _ := strconv.Atoi(f[2])
			usedGID[gid] = true
			groups[f[0]] = true
		}
	}
	shell := "/bin/sh"
	if _, err := os.Stat("/bin/bash"); err == nil {
		shell = "/bin/bash"
	}
	days := time.Now().Unix() / 86400
	next := firstUID
	for _, u := range users {
		if u == "" || u == "root" {
			continue
		}
		if _, done := a.users[u]; done {
			continue
		}
		if e, ok := existing[u]; ok {
			a.users[u] = e
			continue
		}
		for usedUID[next] || usedGID[next] {
			next++
		}
		if next >= 60000 {
			return nil, errors.New("no free uid below 60000 for the lab's users")
		}
		if groups[u] {
			return nil, fmt.Errorf("user %s: the machine has a group of that name and no such user", u)
		}
		acc := account{name: u, uid: next, gid: next, home: "/home/" + u}
		usedUID[next], usedGID[next] = true, true
		a.users[u] = acc
		a.passwd = appendLine(a.passwd, fmt.Sprintf("%s:x:%d:%d:fwpush lab:%s:%s", u, acc.uid, acc.gid, acc.home, shell))
		a.group = appendLine(a.group, fmt.Sprintf("%s:x:%d:", u, acc.gid))
		// "*" and not "!": sshd without PAM refuses keys to a locked account.
		a.shadow = appendLine(a.shadow, fmt.Sprintf("%s:*:%d:0:99999:7:::", u, days))
		if a.gshadow != nil {
			a.gshadow = appendLine(a.gshadow, u+":!::")
		}
	}
	return a, nil
}

// entries splits a colon-separated account file into its fields.
func entries(data []byte) [][]string {
	var out [][]string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func appendLine(data []byte, line string) []byte {
	data = slices.Clone(data)
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	return append(data, line+"\n"...)
}

// newUsers says whether any of the lab's users is not the machine's.
func (a *accounts) newUsers() bool {
	return slices.ContainsFunc(slices.Collect(maps.Values(a.users)), func(u account) bool { return !u.machine })
}

// machine is what the hosts' upper layers are written from, read once per
// Up and shared by every host: the accounts, the machine's /etc/hosts and
// /etc/skel, and the attributes of the machine's files that the upper
// layers copy.
type machine struct {
	*accounts
	hosts []byte
	skel  map[string][]byte

	mu    sync.Mutex
	stats map[string]lowerStat
	real  map[string]string
}

// lowerStat is what an upper layer copies of a file of the machine's.
type lowerStat struct {
	exists, dir, regular, symlink bool
	mode                          fs.FileMode
	uid, gid                      int
}

// readMachine reads what the hosts' upper layers are written from.
func readMachine(acc *accounts) *machine {
	m := &machine{accounts: acc, skel: map[string][]byte{}, stats: map[string]lowerStat{}, real: map[string]string{}}
	m.hosts, _ = os.ReadFile("/etc/hosts")
	ents, _ := os.ReadDir("/etc/skel")
	for _, e := range ents {
		if data, err := os.ReadFile(filepath.Join("/etc/skel", e.Name())); err == nil && e.Type().IsRegular() {
			m.skel[e.Name()] = data
		}
	}
	return m
}

// stat returns the attributes of the machine's p, without following a
// symlink.
func (m *machine) stat(p string) lowerStat {
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.stats[p]; ok {
		return st
	}
	var st lowerStat
	if fi, err := os.Lstat(p); err == nil {
		st = lowerStat{exists: true, dir: fi.IsDir(), regular: fi.Mode().IsRegular(), symlink: fi.Mode()&fs.ModeSymlink != 0,
			mode: fi.Mode() & (fs.ModePerm | fs.ModeSticky | fs.ModeSetgid | fs.ModeSetuid)}
		st.uid, st.gid = owner(fi)
	}
	m.stats[p] = st
	return st
}

// resolve follows the machine's symlinks in the longest existing prefix
// of directory p.
func (m *machine) resolve(p string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.real[p]; ok {
		return r
	}
	r := p
	rest := ""
	for cur := p; ; cur = path.Dir(cur) {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			r = path.Join(real, rest)
			break
		}
		if cur == "/" {
			break
		}
		rest = path.Join(path.Base(cur), rest)
	}
	m.real[p] = r
	return r
}

// writeRootfs writes a host's upper layer. authorized is the client's
// authorized_keys line.
func (l *Lab) writeRootfs(n *Node, m *machine, authorized []byte) error {
	dir := l.fsDir(n)
	for _, d := range []string{"", "upper", "work", "root"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	u := &upper{dir: filepath.Join(dir, "upper"), m: m, made: map[string]bool{"/": true}}
	for _, d := range privateDirs {
		if err := u.opaque(d); err != nil {
			return err
		}
	}
	if !n.Options.NoRootLogin {
		if err := u.authorize("/root", 0, 0, authorized); err != nil {
			return err
		}
	}
	if a, ok := m.users[n.User]; ok {
		if err := u.home(a, !a.machine); err != nil {
			return err
		}
		if err := u.authorize(a.home, a.uid, a.gid, authorized); err != nil {
			return err
		}
		if sudoers := sudoersFor(n.User, n.Options.sudo()); sudoers != "" {
			if err := u.file("/etc/sudoers.d/fwpush-lab", []byte(sudoers), 0o440); err != nil {
				return err
			}
		}
	}
	if m.newUsers() {
		for _, f := range []struct {
			path string
			data []byte
		}{{"/etc/passwd", m.passwd}, {"/etc/group", m.group}, {"/etc/shadow", m.shadow}, {"/etc/gshadow", m.gshadow}} {
			if f.data == nil {
				continue
			}
			if err := u.file(f.path, f.data, 0o644); err != nil {
				return err
			}
		}
	}

	// Its name, which sudo looks up.
	if err := u.file("/etc/hosts", appendLine(m.hosts, "127.0.1.1\t"+n.Name), 0o644); err != nil {
		return err
	}
	if err := u.file("/etc/hostname", []byte(n.Name+"\n"), 0o644); err != nil {
		return err
	}

	// apt: the local repository only, no package lists yet (as on a
	// server before its first apt-get update).
	if err := u.file("/etc/apt/sources.list", []byte(aptSourcesList()), 0o644); err != nil {
		return err
	}
	for _, d := range []string{"/etc/apt/sources.list.d", "/var/lib/apt/lists", "/var/cache/apt"} {
		if err := u.opaque(d); err != nil {
			return err
		}
	}
	for _, d := range []string{"/var/lib/apt/lists/partial", "/var/cache/apt/archives/partial"} {
		if err := u.mkdirAll(d); err != nil {
			return err
		}
	}
	// A build image's "do not start services" policy (exit 101) is not a
	// server's: without it, installing a package starts its service.
	if err := u.whiteout("/usr/sbin/policy-rc.d"); err != nil {
		return err
	}
	// man-db's index is rebuilt (mandb, 1-4 s of CPU) after every install
	// where this file is (debconf's man-db/auto-update true, Debian's
	// default): hosts that install iptables-persistent would each pay it,
	// for manual pages nobody reads on them.
	if err := u.whiteout("/var/lib/man-db/auto-update"); err != nil {
		return err
	}

	for _, p := range slices.Sorted(maps.Keys(n.Options.Files)) {
		if err := u.file(p, []byte(n.Options.Files[p]), 0o644); err != nil {
			return fmt.Errorf("file %s: %w", p, err)
		}
	}
	return nil
}

// sudoersFor is the sudoers drop-in that gives user its rights; "" for none.
func sudoersFor(user string, s Sudo) string {
	switch s {
	case SudoNopasswd:
		return "# fwpush lab\n" + user + " ALL=(ALL:ALL) NOPASSWD: ALL\n"
	case SudoPassword:
		return "# fwpush lab\n" + user + " ALL=(ALL:ALL) ALL\n"
	}
	return ""
}

// upper writes into one host's upper layer, which it makes from nothing.
// Paths are the host's, absolute.
type upper struct {
	dir  string
	m    *machine
	made map[string]bool // the directories made so far
}

func (u *upper) at(p string) string { return filepath.Join(u.dir, p) }

// mkdirAll creates directory p and its parents in the upper layer, each
// with the mode and owner of the machine's directory of that name (root's
// 0755 for one the machine lacks). A path through a symlink of the
// machine's is refused: a directory in its place would replace the link.
func (u *upper) mkdirAll(p string) error {
	cur := "/"
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		cur = path.Join(cur, part)
		if u.made[cur] {
			continue
		}
		mode, uid, gid := fs.FileMode(0o755), 0, 0
		switch st := u.m.stat(cur); {
		case st.symlink:
			return fmt.Errorf("%s: a symlink on the machine", cur)
		case st.dir:
			mode, uid, gid = st.mode, st.uid, st.gid
		case st.exists:
			return fmt.Errorf("%s: not a directory on the machine", cur)
		}
		if err := mkdirOwned(u.at(cur), mode, uid, gid); err != nil {
			return err
		}
		u.made[cur] = true
	}
	return nil
}

// umask is this process's, which the modes of the files it creates lose.
var umask = func() fs.FileMode {
	m := unix.Umask(0)
	unix.Umask(m)
	return fs.FileMode(m)
}()

// setOwner gives a file made with mode its owner, and the bits of mode
// that the umask or the system call dropped.
func setOwner(p string, mode fs.FileMode, uid, gid int) error {
	if uid != 0 || gid != 0 {
		if err := os.Chown(p, uid, gid); err != nil {
			return err
		}
	}
	if mode&umask != 0 || mode&(fs.ModeSticky|fs.ModeSetgid|fs.ModeSetuid) != 0 {
		return os.Chmod(p, mode)
	}
	return nil
}

// mkdirOwned creates one directory with exactly that mode and owner.
func mkdirOwned(p string, mode fs.FileMode, uid, gid int) error {
	if err := os.Mkdir(p, mode.Perm()); err != nil {
		return err
	}
	return setOwner(p, mode, uid, gid)
}

// writeOwned writes a new file with exactly that mode and owner.
func writeOwned(p string, data []byte, mode fs.FileMode, uid, gid int) error {
	if err := os.WriteFile(p, data, mode.Perm()); err != nil {
		return err
	}
	return setOwner(p, mode, uid, gid)
}

// owner returns the uid and gid of a file.
func owner(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

// opaque makes p an empty directory in the host, hiding the machine's
// entries; nothing when the machine has no such directory.
func (u *upper) opaque(p string) error {
	if !u.m.stat(p).dir {
		return nil
	}
	if err := u.mkdirAll(p); err != nil {
		return err
	}
	return unix.Setxattr(u.at(p), opaqueXattr, []byte("y"), 0)
}

// whiteout deletes p from the host; nothing when the machine has no p.
func (u *upper) whiteout(p string) error {
	if !u.m.stat(p).exists {
		return nil
	}
	if err := u.mkdirAll(path.Dir(p)); err != nil {
		return err
	}
	return unix.Mknod(u.at(p), unix.S_IFCHR, 0)
}

// file writes p into the host, with the mode and owner of the machine's
// file of that name if there is one (so /etc/shadow stays root:shadow
// 0640), else root's and mode. The parent directory is resolved through
// the machine's symlinks (/lib is /usr/lib on Debian).
func (u *upper) file(p string, data []byte, mode fs.FileMode) error {
	parent := u.m.resolve(path.Dir(p))
	p = path.Join(parent, path.Base(p))
	if err := u.mkdirAll(parent); err != nil {
		return err
	}
	uid, gid := 0, 0
	if st := u.m.stat(p); st.regular {
		mode, uid, gid = st.mode, st.uid, st.gid
	}
	return writeOwned(u.at(p), data, mode, uid, gid)
}

// home creates a user's home with /etc/skel's files when fresh is set (a
// user the lab created); an existing user's home is only made to exist.
func (u *upper) home(a account, fresh bool) error {
	if err := u.mkdirAll(path.Dir(a.home)); err != nil {
		return err
	}
	if u.made[a.home] || !fresh {
		return u.mkdirAll(a.home)
	}
	if err := mkdirOwned(u.at(a.home), 0o700, a.uid, a.gid); err != nil {
		return err
	}
	u.made[a.home] = true
	for name, data := range u.m.skel {
		if err := writeOwned(u.at(path.Join(a.home, name)), data, 0o644, a.uid, a.gid); err != nil {
			return err
		}
	}
	return nil
}

// authorize puts the client's key into home/.ssh/authorized_keys.
func (u *upper) authorize(home string, uid, gid int, key []byte) error {
	if err := u.mkdirAll(home); err != nil {
		return err
	}
	ssh := path.Join(home, ".ssh")
	if !u.made[ssh] {
		if err := mkdirOwned(u.at(ssh), 0o700, uid, gid); err != nil {
			return err
		}
		u.made[ssh] = true
	}
	return writeOwned(u.at(path.Join(ssh, "authorized_keys")), key, 0o600, uid, gid)
}

// utmp is a utmp record that says the system runs in runlevel 2, as init
// writes it at boot. With it invoke-rc.d starts the service of a package
// being installed (netfilter-persistent loading the rules files), as on a
// booted server; without it, it starts nothing.
func utmp() []byte {
	rec := make([]byte, 384)   // struct utmp on Linux
	rec[0] = 1                 // ut_type RUN_LVL
	rec[4], rec[5] = '2', 'N'  // ut_pid: runlevel 2, none before
	copy(rec[8:], "~~")        // ut_line
	copy(rec[40:], "~~")       // ut_id
	copy(rec[44:], "runlevel") // ut_user
	return rec
}
