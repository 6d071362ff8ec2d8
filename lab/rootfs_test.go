package lab

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/internal/testenv"
)

func TestPlanAccounts(t *testing.T) {
	testenv.Root(t) // it reads the machine's /etc/shadow
	acc, err := planAccounts([]string{"root", "fwplab-a", "", "fwplab-b", "fwplab-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := acc.users["root"]; ok || len(acc.users) != 2 {
		t.Fatalf("users %v, want fwplab-a and fwplab-b", acc.users)
	}
	a, b := acc.users["fwplab-a"], acc.users["fwplab-b"]
	if a.uid < firstUID || a.uid != a.gid || b.uid == a.uid || a.home != "/home/fwplab-a" || a.machine || !acc.newUsers() {
		t.Errorf("new users: %+v, %+v", a, b)
	}
	// The uids are free on the machine, and the users are in every file,
	// with no password and no lock (sshd refuses keys to a locked account).
	machine := must(planAccounts(nil))
	for _, e := range entries(machine.passwd) {
		if e[2] == strconv.Itoa(a.uid) || e[2] == strconv.Itoa(b.uid) {
			t.Errorf("uid %s is the machine's %s", e[2], e[0])
		}
	}
	for file, want := range map[string]string{
		"passwd": "fwplab-a:x:" + strconv.Itoa(a.uid) + ":" + strconv.Itoa(a.gid) + ":fwpush lab:/home/fwplab-a:",
		"group":  "fwplab-b:x:" + strconv.Itoa(b.gid) + ":\n",
		"shadow": "fwplab-a:*:",
	} {
		data := map[string][]byte{"passwd": acc.passwd, "group": acc.group, "shadow": acc.shadow}[file]
		if !strings.Contains(string(data), want) || !strings.HasPrefix(string(data), string(map[string][]byte{"passwd": machine.passwd, "group": machine.group, "shadow": machine.shadow}[file])) {
			t.Errorf("%s: want the machine's entries, then %q:\n%s", file, want, data)
		}
	}
	// A user the machine has keeps its entry.
	acc = must(planAccounts([]string{"daemon"}))
	if d := acc.users["daemon"]; !d.machine || d.uid != 1 || acc.newUsers() {
		t.Errorf("daemon: %+v", d)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSudoers(t *testing.T) {
	for s, want := range map[Sudo]string{
		SudoNopasswd: "deploy ALL=(ALL:ALL) NOPASSWD: ALL\n",
		SudoPassword: "deploy ALL=(ALL:ALL) ALL\n",
		SudoNone:     "",
	} {
		if got := sudoersFor("deploy", s); !strings.HasSuffix(got, want) || (want == "") != (got == "") {
			t.Errorf("sudoers for %s: %q, want %q", s, got, want)
		}
	}
}

// TestUtmp decodes the record as glibc's struct utmp lays it out.
func TestUtmp(t *testing.T) {
	rec := utmp()
	if len(rec) != 384 {
		t.Fatalf("utmp record of %d bytes, want 384", len(rec))
	}
	typ := binary.LittleEndian.Uint16(rec[0:])
	pid := binary.LittleEndian.Uint32(rec[4:])
	user := strings.TrimRight(string(rec[44:76]), "\x00")
	if typ != 1 || byte(pid) != '2' || byte(pid>>8) != 'N' || user != "runlevel" {
		t.Errorf("utmp: type %d, runlevel %q, previous %q, user %q", typ, byte(pid), byte(pid>>8), user)
	}
}
