package templates

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A user template is read only when it is a regular .tmpl file, and its
// real name ends in .tmpl too; nothing else is read, so that no error
// can quote it.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	at := func(name string) string { return filepath.Join(dir, name) }
	write := func(name, body string) {
		if err := os.WriteFile(at(name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(name, target string) {
		if err := os.Symlink(target, at(name)); err != nil {
			t.Fatal(err)
		}
	}
	write("db.tmpl", "*filter\nCOMMIT\n")
	write("secret", "SECRET-LINE\n")
	link("alias.tmpl", "db.tmpl")
	link("secret.tmpl", "secret")
	if err := syscall.Mkfifo(at("fifo.tmpl"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(at("dir.tmpl"), 0o755); err != nil {
		t.Fatal(err)
	}
	write("big.tmpl", strings.Repeat("#\n", MaxFileSize/2+1))

	tests := []struct {
		name, want string // want: the error, "" for none
	}{
		{"db.tmpl", ""},
		{"alias.tmpl", ""},
		{"secret", "secret: a template file's name ends in .tmpl: refused"},
		{"secret.tmpl", "secret.tmpl leads to " + at("secret") + ", whose name does not end in .tmpl: refused"},
		{"fifo.tmpl", "fifo.tmpl is not a regular file: refused"},
		{"dir.tmpl", "dir.tmpl is not a regular file: refused"},
		{"big.tmpl", "big.tmpl is larger than 1024 KiB: refused"},
		{"missing.tmpl", "open " + at("missing.tmpl") + ": no such file or directory"},
	}
	for _, tt := range tests {
		b, err := ReadFile(at(tt.name))
		if tt.want == "" {
			if err != nil || string(b) != "*filter\nCOMMIT\n" {
				t.Errorf("%s: %q, %v; want the template", tt.name, b, err)
			}
			continue
		}
		if err == nil || !strings.HasSuffix(err.Error(), tt.want) || b != nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%s: %q, %v; want no bytes and an error ending %q", tt.name, b, err, tt.want)
		}
		if tt.name == "missing.tmpl" && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("missing.tmpl: %v is not fs.ErrNotExist", err)
		}
	}
}
