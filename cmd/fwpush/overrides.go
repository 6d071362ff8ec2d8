package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
)

// The bounds of the settings run's flags override, the same as the
// inventory's validation applies to [ssh] (inventory/validate.go).
const (
	minParallel      = 1
	maxParallel      = 1000
	minTimeout       = time.Second
	maxTimeout       = inventory.MaxTimeout
	minRollbackAfter = 5 * time.Second
	maxRollbackAfter = inventory.MaxRollbackAfter
)

// sshOverrides are run's --parallel, --timeout and --rollback-after: a
// flag wins over its FWPUSH_* variable, the variable over the inventory's
// [ssh] setting.
type sshOverrides struct {
	parallel               int
	timeout, rollbackAfter time.Duration
	// set records which flags the command line gave.
	set map[string]bool
}

func (o *sshOverrides) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&o.parallel, "parallel", 0, "hosts worked on at once, 1 to 1000 (default: $FWPUSH_PARALLEL, then [ssh] parallel)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "bound of each SSH connection and step, 1s to 2m (default: $FWPUSH_TIMEOUT, then [ssh] timeout)")
	cmd.Flags().DurationVar(&o.rollbackAfter, "rollback-after", 0, "how long a host waits for the confirm before it restores its old rules, 5s to 10m (default: $FWPUSH_ROLLBACK_AFTER, then [ssh] rollback_after)")
}

// seen records which of the flags cmd's command line set.
func (o *sshOverrides) seen(cmd *cobra.Command) {
	o.set = map[string]bool{}
	for _, name := range []string{"parallel", "timeout", "rollback-after"} {
		o.set[name] = cmd.Flags().Changed(name)
	}
}

// apply overrides inv's [ssh] settings, checking each against the bounds
// the inventory's own would be held to. A bad value is a usage error
// naming where it came from.
func (o *sshOverrides) apply(inv *inventory.Inventory) error {
	changed := false
	if v, from, ok := o.value("parallel", "FWPUSH_PARALLEL", strconv.Itoa(o.parallel)); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < minParallel || n > maxParallel {
			return &inputError{fmt.Errorf("%s: hosts worked on at once must be %d to %d", from, minParallel, maxParallel)}
		}
		inv.SSH.Parallel = n
	}
	for _, d := range []struct {
		flag, env  string
		val        time.Duration
		least, top time.Duration
		dst        *time.Duration
	}{
		{"timeout", "FWPUSH_TIMEOUT", o.timeout, minTimeout, maxTimeout, &inv.SSH.Timeout},
		{"rollback-after", "FWPUSH_ROLLBACK_AFTER", o.rollbackAfter, minRollbackAfter, maxRollbackAfter, &inv.SSH.RollbackAfter},
	} {
		v, from, ok := o.value(d.flag, d.env, d.val.String())
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(v)
		switch {
		case err != nil:
			return &inputError{fmt.Errorf("%s: not a duration (such as \"10s\" or \"1m\")", from)}
		case dur < d.least || dur > d.top:
			return &inputError{fmt.Errorf("%s: out of range %s to %s", from, d.least, d.top)}
		}
		*d.dst = dur
		changed = true
	}
	// After the apply, fwpush may need a whole timeout to reach the host
	// again, and must confirm before the guard fires: a guard that fires
	// first would undo every good apply.
	if need := (inv.SSH.Timeout*3/2 + time.Second - 1).Truncate(time.Second); changed && inv.SSH.RollbackAfter < need {
		return &inputError{fmt.Errorf("rollback-after %s is not clearly longer than the timeout %s: after the apply fwpush may need a whole timeout to reach a host again and confirm; use at least %s",
			inv.SSH.RollbackAfter, inv.SSH.Timeout, need)}
	}
	return nil
}

// value returns the setting's value and where it came from: the flag if
// the command line set it, else the environment variable if set.
func (o *sshOverrides) value(flag, env, flagVal string) (v, from string, ok bool) {
	if o.set[flag] {
		return flagVal, "--" + flag + " " + flagVal, true
	}
	if v := os.Getenv(env); v != "" {
		return v, env + "=" + v, true
	}
	return "", "", false
}
