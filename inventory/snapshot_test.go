package inventory

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden snapshots in testdata/snapshot")

// A snapshot's bytes are what operators keep and diff: they change only
// on purpose. Golden files of every example, and of a fleet resolved from
// DigitalOcean, rewritten with -update.
func TestSnapshotGolden(t *testing.T) {
	resolved, err := decodeFile(t, doFile).Resolve(droplets(), nil)
	if err != nil {
		t.Fatal(err)
	}
	invs := map[string]*Inventory{"do.toml": resolved}
	if invs["keys.toml"], err = Load(filepath.Join("testdata", "keys.toml")); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"site.toml", "cloud.toml", "custom.toml", "sites.toml", "large.toml", "mixed.toml"} {
		if invs[file], err = Load(filepath.Join("..", "examples", file)); err != nil {
			t.Fatal(err)
		}
	}
	for name, inv := range invs {
		t.Run(name, func(t *testing.T) {
			// Templates relative to ../examples, written relative to
			// testdata/snapshot.
			got, err := Snapshot(inv, SnapshotOptions{Comment: []string{"snapshot of " + name, "at noon"}, From: "/fwpush/examples", To: "/fwpush/inventory/testdata/snapshot"})
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "snapshot", name)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(strings.Split(string(want), "\n"), strings.Split(string(got), "\n")); diff != "" {
				t.Errorf("snapshot of %s differs from %s (-want +got):\n%s", name, golden, diff)
			}
		})
	}
}
