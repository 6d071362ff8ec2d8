package runner

import "strings"

// Statuses are every status a host can end a run with, in the order
// summaries list them.
var Statuses = []Status{Unchanged, Pending, Applied, DriftRepaired,
	RolledBack, Unknown, Failed, Stale, Unreachable, NotTried, Skipped}

// Stale is the status of a host that fwpush apply left untouched because
// it is no longer in the state its saved plan was made on: changed by hand
// since, or by another run (see RunOptions.Planned).
const Stale Status = "stale"

// Key is the status as machines read it, in JSON reports and metric
// labels: snake_case ("drift_repaired").
func (s Status) Key() string { return strings.ReplaceAll(string(s), " ", "_") }
