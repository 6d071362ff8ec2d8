package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/inventory"
)

// Exit codes, decided in one place (exitCode).
const (
	exitOK      = 0 // all good
	exitFailed  = 1 // a host failed, was unreachable or rolled back
	exitChanges = 2 // changes pending (run --dry-run)
	exitInvalid = 3 // invalid input: nothing was contacted
	// exitInterrupted: a signal stopped the command; the report says what
	// each host has. It is SIGINT's: the status is 128 + the signal's
	// number, as shells report it (see interruptCode).
	exitInterrupted = 130
)

// exitError carries an exit code chosen by a command. A nil err with a
// non-zero code means the command already reported everything.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageError is a command line of the wrong shape: an unknown flag, a
// missing argument. Its message points to --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// inputError is a command line of the right shape whose values are wrong:
// a --limit term that matches no host, a --via that is no bastion, a
// duration out of range. Its message says what is wrong, and --help would
// not: it has no pointer to it. Exit status 3, as a usageError.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// run is the whole CLI, with its effects on the outside world passed in,
// so that tests drive the real commands.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return exitCode(root.ExecuteContext(ctx), stderr)
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "fwpush:", ee.err)
		}
		return ee.code
	}
	var ie *inventory.Error
	if errors.As(err, &ie) {
		fmt.Fprintln(stderr, err)
		return exitInvalid
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "fwpush:", err)
		fmt.Fprintln(stderr, "Run 'fwpush --help' for usage.")
		return exitInvalid
	}
	var bad *inputError
	if errors.As(err, &bad) {
		fmt.Fprintln(stderr, "fwpush:", err)
		return exitInvalid
	}
	fmt.Fprintln(stderr, "fwpush:", err)
	return exitFailed
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "fwpush",
		Short: "Lock a fleet of Linux servers into a private-network firewall policy",
		Long: `fwpush renders each server's iptables policy (IPv4 and IPv6) from a TOML
inventory, pushes it over SSH through one tunnel host, applies it atomically
with an automatic rollback, proves the network still works, and makes it
survive reboots.`,
		Example: `  fwpush validate site.toml
  fwpush render --host mysql-1 site.toml
  fwpush run --dry-run site.toml`,
		Version:       fullVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("fwpush {{.Version}}\n") // as `fwpush version` prints it
	// Declared here so that cobra gives it no -v: -v is --verbose.
	root.Flags().Bool("version", false, "print fwpush's version")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newVersionCmd(),
		newValidateCmd(),
		newRenderCmd(),
		newLabCmd(),
		newRunCmd(),
		newPlanCmd(),
		newApplyCmd(),
		newCheckCmd(),
		newHistoryCmd(),
		newScheduleCmd(),
		newGraphCmd(),
		newHostsCmd(),
		newSSHConfigCmd(),
		newExplainCmd(),
		newDiffCmd(),
		newManCmd(),
	)
	registerCompletions(root)
	commaBash(root)
	return root
}

// inventoryArg is the positional-argument check of commands that take one
// inventory file.
func inventoryArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return &usageError{fmt.Errorf("%s takes one inventory file, got %s", cmd.CommandPath(), english.Count(len(args), "argument"))}
	}
	return nil
}
