package strace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		kids      []int
		exec      bool
	}{
		{"nothing", "", nil, false},
		{"fork and exec", "vfork() = 12\nexecve(\"/bin/sh\", [\"sh\"], 0x1 /* 3 vars */) = 0\nfork() = 13\n", []int{12, 13}, true},
		{"failed exec", "execve(\"/nowhere/sh\", [\"sh\"], 0x1 /* 3 vars */) = -1 ENOENT (No such file or directory)\n", nil, false},
		{"a thread", "clone(child_stack=0x7f, flags=CLONE_VM|CLONE_THREAD|CLONE_SIGHAND, parent_tid=[14]) = 14\n", nil, false},
		{"a failed fork", "fork() = -1 EAGAIN (Resource temporarily unavailable)\n", nil, false},
		{"clone3", "clone3({flags=CLONE_VM|CLONE_VFORK, exit_signal=SIGCHLD, stack=0x7f, stack_size=0x9000}, 88) = 15\n", []int{15}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Parse([]byte(tc.log))
			if !cmp.Equal(p.Children, tc.kids) || (len(p.Execs) > 0) != tc.exec {
				t.Errorf("Parse = %v, %v; want %v, exec %v", p.Children, p.Execs, tc.kids, tc.exec)
			}
		})
	}
	if p := Parse([]byte("execve(\"/bin/sh\", [\"sh\", \"-s\"], 0x1 /* 3 vars */) = 0\n")); !cmp.Equal(p.Execs, []Exec{{"/bin/sh", `"sh", "-s"`}}) {
		t.Errorf("Parse's exec = %+v, want /bin/sh with its arguments", p.Execs)
	}
}

// TestRead: logs by pid, files of other names left out, none at all an
// error.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	for name, log := range map[string]string{"x.10": "fork() = 11\n", "x.11": "", "x.txt": "fork() = 12\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(log), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := Read(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]Proc{10: {Children: []int{11}}, 11: {}}; !cmp.Equal(got, want) {
		t.Errorf("Read (-want +got):\n%s", cmp.Diff(want, got))
	}
	if _, err := Read(filepath.Join(dir, "y")); err == nil || !strings.Contains(err.Error(), "no strace log") {
		t.Errorf("Read of no logs: %v", err)
	}
}
