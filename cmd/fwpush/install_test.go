package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab"
)

// TestMakeInstall: make install puts fwpush in PREFIX/bin (DESTDIR
// before it), where the lab's hints and the docs' examples find it, and
// the fwpush it built says the VERSION make gave it (-ldflags -X
// main.version).
func TestMakeInstall(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds fwpush with make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make here")
	}
	dir := t.TempDir()
	// BIN in the test's directory: the checkout's bin/ stays as it was.
	cmd := exec.Command("make", "-C", "../..", "install", "BIN="+filepath.Join(dir, "build", "fwpush"),
		"PREFIX=/opt/fw", "DESTDIR="+filepath.Join(dir, "root"), "VERSION=v9.9.9-install")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(dir, "root", "opt", "fw", "bin", "fwpush")
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("make install: %s: %v %v, want an executable", bin, fi, err)
	}
	if out, err := exec.Command(bin, "--version").Output(); err != nil || string(out) != "fwpush v9.9.9-install\n" {
		t.Errorf("%s --version: %q %v", bin, out, err)
	}
}

// TestHintsRunAsPrinted: the lab's hints name fwpush as the user ran it
// when by a path (bin/fwpush after make build alone), else as found on
// PATH.
func TestHintsRunAsPrinted(t *testing.T) {
	for arg0, want := range map[string]string{
		"fwpush":                          "fwpush",
		"bin/fwpush":                      "bin/fwpush",
		"./fwpush":                        "./fwpush",
		"/usr/local/bin/fwpush":           "/usr/local/bin/fwpush",
		"/tmp/go-build1/b001/fwpush.test": "fwpush", // a test binary standing in for fwpush
	} {
		if got := invokedAs(arg0); got != want {
			t.Errorf("invokedAs(%q) = %q, want %q", arg0, got, want)
		}
	}
	if lab.CheckRoot() != nil {
		return // lab exec stops before, at not being root
	}
	code, _, errs := fwpush(t, "lab", "exec", "--name", "fwp-never-up", exampleSite, "--", "true")
	if code == exitOK || !strings.Contains(errs, "bring it up with: fwpush lab up --name fwp-never-up "+exampleSite+"\n") {
		t.Errorf("lab exec of a lab that is down: exit %d, %q", code, errs)
	}
}
