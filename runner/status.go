package runner

import "strings"

// Statuses are every status a host can end a run with, in the order
// summaries list them.
var Statuses = []Status{Unchanged, Pending, Applied, DriftRepaired,
	RolledBack, Unknown, Failed, Unreachable, NotTried, Skipped}

// Key is the status as machines read it, in JSON reports and metric
// labels: snake_case ("drift_repaired").
func (s Status) Key() string { return strings.ReplaceAll(string(s), " ", "_") }
