package runner

import (
	"testing"

	"github.com/fwpush/fwpush/inventory"
)

// TestPushBoot: every result says what its host loads if it reboots now;
// a host that failed says whether its earlier persisted rules are still in
// place, or that the run cannot tell.
func TestPushBoot(t *testing.T) {
	t.Parallel()
	const earlier = "# rules an earlier run persisted\n"
	withFiles := func(h *fakeHost) { h.files[fileRulesV4], h.files[fileRulesV6] = earlier, earlier }
	noInterface := func(h *fakeHost) { h.facts.Links = []string{"eth0", "lo"} }
	tests := []struct {
		name   string
		set    func(h *fakeHost)
		opts   RunOptions
		status Status
		boot   Boot
	}{
		{"applied", nil, RunOptions{}, Applied, BootPolicy},
		{"applied over earlier rules", withFiles, RunOptions{}, Applied, BootPolicy},
		{"dry run over earlier rules", withFiles, RunOptions{DryRun: true}, Pending, BootEarlier},
		{"dry run of a fresh host", nil, RunOptions{DryRun: true}, Pending, BootNone},
		{"failed with earlier rules", func(h *fakeHost) { withFiles(h); noInterface(h) }, RunOptions{}, Failed, BootEarlier},
		{"failed without", noInterface, RunOptions{}, Failed, BootNone},
		{"failed with rules files but nothing to load them", func(h *fakeHost) { withFiles(h); noInterface(h); h.persistent = false }, RunOptions{}, Failed, BootNone},
		{"the detached apply failed", func(h *fakeHost) { withFiles(h); h.applyLog = "iptables-restore: line 3 failed" }, RunOptions{}, Failed, BootEarlier},
		{"rolled back", func(h *fakeHost) { withFiles(h); h.cutAfterApply = true }, RunOptions{RollbackAfter: cutRollbackAfter}, RolledBack, BootEarlier},
		{"unreachable", func(h *fakeHost) { withFiles(h); h.unreachable = true }, RunOptions{}, Unreachable, BootUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan, fleet := newTestPlan(t)
			h := fleet.host("app-1")
			if tt.set != nil {
				h.set(tt.set)
			}
			app, _ := plan.Inventory.Host("app-1")
			r := runHosts(t, plan, []*inventory.Host{app}, fleet, tt.opts)["app-1"]
			if r.Status != tt.status || r.Boot != tt.boot || r.Persisted != (tt.boot == BootPolicy) {
				t.Errorf("app-1: %s, boot %q, persisted %v (%v); want %s, boot %q", r.Status, r.Boot, r.Persisted, r.Err, tt.status, tt.boot)
			}
		})
	}
}
