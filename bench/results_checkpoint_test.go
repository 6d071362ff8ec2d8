package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckpoint: after each lab the JSON holds what was measured, with
// only the sizes done, so that -from-json can report a stopped bench; no
// JSON asked for, no file.
func TestCheckpoint(t *testing.T) {
	res := &Results{Runs: 1, Sizes: []int{6, 50, 150}}
	res.add(FirstPush, 6, 0, Sample{Wall: 1e9, CPU: 1e8})
	res.add(FirstPush, 50, 0, Sample{Wall: 5e9, CPU: 5e8})
	path := filepath.Join(t.TempDir(), "bench.json")

	if err := checkpoint(Config{}, res, 50); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("no JSON asked for, yet %s: %v", path, err)
	}
	if err := checkpoint(Config{JSON: path}, res, 50); err != nil {
		t.Fatal(err)
	}
	got, err := ReadJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Sizes, []int{6, 50}) {
		t.Errorf("sizes %v, want the two measured, [6 50]", got.Sizes)
	}
	if len(got.Measurements) != 2 || got.Get(FirstPush, 50, 0) == nil {
		t.Errorf("measurements %+v, want both first pushes", got.Measurements)
	}
	if !slices.Equal(res.Sizes, []int{6, 50, 150}) {
		t.Errorf("the results' own sizes became %v", res.Sizes)
	}
}
