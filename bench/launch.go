package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// launched runs cmd through the launcher (cfg.Launcher, see
// bench/cmd/fwbench-launch) and returns the sample of the program itself.
// An exit status other than want is an error, and so is a peak memory not
// above the launcher's: it could be the launcher's.
func (f *fleet) launched(ctx context.Context, cmd *exec.Cmd, want int) (Sample, error) {
	return launch(ctx, f.cfg.Launcher, cmd, want)
}

// launch runs cmd through launcher and returns the sample of the program
// itself, as launched does.
func launch(ctx context.Context, launcher string, cmd *exec.Cmd, want int) (Sample, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return Sample{}, err
	}
	defer r.Close()
	l := exec.CommandContext(ctx, launcher, append([]string{cmd.Path}, cmd.Args[1:]...)...)
	l.Env = cmd.Env
	l.Stdin, l.Stdout, l.Stderr = cmd.Stdin, cmd.Stdout, cmd.Stderr
	var stderr bytes.Buffer
	if l.Stderr == nil {
		l.Stderr = &stderr
	}
	l.ExtraFiles = []*os.File{w}
	err = l.Start()
	w.Close()
	if err != nil {
		return Sample{}, fmt.Errorf("launcher: %w", err)
	}
	rep, rerr := io.ReadAll(r)
	err = l.Wait()
	name := strings.Join(cmd.Args, " ")
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == want && want != 0:
	case err != nil:
		return Sample{}, fmt.Errorf("%s: %w: %s", name, err, tail(stderr.Bytes()))
	case want != 0:
		return Sample{}, fmt.Errorf("%s: exit status 0, expected %d", name, want)
	}
	var wall, cpu time.Duration
	var s Sample
	if _, err := fmt.Sscan(string(rep), &wall, &cpu, &s.MaxRSS, &s.LauncherRSS); rerr != nil || err != nil {
		return Sample{}, fmt.Errorf("%s: the launcher's report %q: %v", name, rep, errors.Join(rerr, err))
	}
	s.Wall, s.CPU = wall, cpu
	if s.MaxRSS <= s.LauncherRSS {
		return Sample{}, fmt.Errorf("%s: peak RSS %d bytes is not above the launcher's %d: it cannot be told from it", name, s.MaxRSS, s.LauncherRSS)
	}
	return s, nil
}
