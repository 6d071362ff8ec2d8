package templates

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// MaxFileSize bounds a user template's file: far more than any policy
// needs.
const MaxFileSize = 1 << 20

// ext ends the name of every template file, the user's (see
// inventory.TemplateExt) as the built-in ones.
const ext = ".tmpl"

// ReadFile reads a user template: a regular file whose name ends in .tmpl,
// and whose real name (where its symbolic links lead) does too, of at most
// MaxFileSize. Anything else is refused before a byte of it is read: a
// template's errors quote its lines, and a path in an inventory must not
// make fwpush read and quote /etc/shadow, or wait on a FIFO.
func ReadFile(path string) ([]byte, error) {
	if !strings.HasSuffix(path, ext) {
		return nil, fmt.Errorf("%s: a template file's name ends in %s: refused", path, ext)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, &fs.PathError{Op: "open", Path: path, Err: pe.Err}
		}
		return nil, err
	}
	if !strings.HasSuffix(real, ext) {
		return nil, fmt.Errorf("%s leads to %s, whose name does not end in %s: refused", path, real, ext)
	}
	// O_NONBLOCK: a FIFO planted there must not hold the open.
	f, err := os.OpenFile(real, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file: refused", path)
	case fi.Size() > MaxFileSize:
		return nil, fmt.Errorf("%s is larger than %d KiB: refused", path, MaxFileSize>>10)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s is larger than %d KiB: refused", path, MaxFileSize>>10)
	}
	return b, nil
}
