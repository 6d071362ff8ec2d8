package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/xtables"
)

// With FWPUSH_TEST_BLOCK set, the test binary standing in for fwpush (see
// TestMain) never ends the phase it names, as a compile of a fleet too
// large to wait for: "compile" the inventory's load and compile, "test"
// validate's iptables-restore loads (which end when their context does,
// as xtables.Tester's). Each says on stderr when it has started.
func init() {
	switch os.Getenv("FWPUSH_TEST_BLOCK") {
	case "compile":
		compile = func(context.Context, string, string, roles.Options) (*roles.Plan, error) {
			fmt.Fprintln(os.Stderr, "test: compile started")
			select {}
		}
	case "test":
		newTester = func() policyTester { return blockedTester{} }
	}
}

type blockedTester struct{}

func (blockedTester) Test(ctx context.Context, _ []xtables.Doc) ([]error, error) {
	fmt.Fprintln(os.Stderr, "test: iptables-restore started")
	<-ctx.Done()
	return nil, ctx.Err()
}

func (blockedTester) TestSets(ctx context.Context, _ [][]byte) ([]error, error) {
	fmt.Fprintln(os.Stderr, "test: ipset started")
	<-ctx.Done()
	return nil, ctx.Err()
}

func (blockedTester) TestNFT(ctx context.Context, _ string, _ [][]byte) ([]xtables.Listed, error) {
	fmt.Fprintln(os.Stderr, "test: nft started")
	<-ctx.Done()
	return nil, ctx.Err()
}

// The first SIGINT or SIGTERM stops every command while it loads the
// inventory and compiles the policies, and validate while iptables-restore
// loads them, with 128 + the signal's number: the compile of 2,000 hosts
// once ignored it for 15 s, so that timeout(1) could not stop fwpush.
// The phase here never ends: without the signal's effect, the test's
// deadline fails it.
func TestSignalStopsLoading(t *testing.T) {
	for _, tc := range []struct {
		block string
		args  []string
		sig   syscall.Signal
		why   string
	}{
		{"compile", []string{"validate"}, syscall.SIGTERM, "loading"},
		{"compile", []string{"render", "--host", "mysql-1"}, syscall.SIGINT, "loading"},
		{"compile", []string{"run", "--dry-run"}, syscall.SIGTERM, "loading"},
		{"compile", []string{"check"}, syscall.SIGTERM, "loading"},
		{"compile", []string{"graph"}, syscall.SIGHUP, "loading"},
		{"test", []string{"validate"}, syscall.SIGTERM, "loading the policies with iptables-restore"},
	} {
		name := tc.block + ": " + strings.Join(tc.args, " ") + ": " + tc.sig.String()
		t.Run(name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], append(tc.args, "../../examples/site.toml")...)
			cmd.Env = append(os.Environ(), "FWPUSH_TEST_CLI=1", "FWPUSH_TEST_BLOCK="+tc.block)
			errs, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(errs)
			var said []string
			for sc.Scan() {
				said = append(said, sc.Text())
				if strings.HasPrefix(sc.Text(), "test: ") {
					break
				}
			}
			code, rest := signalAndWait(t, cmd, sc, tc.sig)
			said = append(said, rest...)
			want := 128 + int(tc.sig)
			if code != want || !strings.Contains(strings.Join(said, "\n"), "fwpush: interrupted while "+tc.why) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, saying it was interrupted while %s", code, strings.Join(said, "\n"), want, tc.why)
			}
		})
	}
}

// signalAndWait sends sig to cmd, started, and returns its exit status and
// the rest of what it says on sc, its stderr. One that is still running a
// minute later is killed and fails the test: that is no measure of speed,
// but what is left of "never".
func signalAndWait(t *testing.T, cmd *exec.Cmd, sc *bufio.Scanner, sig syscall.Signal) (code int, said []string) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sc.Scan() {
			said = append(said, sc.Text())
		}
		_ = cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running a minute after %s; stderr:\n%s", sig, strings.Join(said, "\n"))
	}
	return cmd.ProcessState.ExitCode(), said
}
