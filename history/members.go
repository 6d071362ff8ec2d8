package history

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Members is a resolved fleet as a run leaves it for the next run of the
// same inventory on the same machine: the fleet's digest (see
// inventory.Inventory.Digest) and its hosts' names. A cloud inventory's
// membership changes between runs; the next run tells what joined and
// what left.
type Members struct {
	Digest string   `json:"digest"`
	Hosts  []string `json:"hosts"`
}

// Changes returns the hosts of cur that prev lacks (joined) and those of
// prev that cur lacks (left), each sorted; none when there was no run
// before (prev nil).
func Changes(prev *Members, cur Members) (joined, left []string) {
	if prev == nil || prev.Digest == cur.Digest && cur.Digest != "" {
		return nil, nil
	}
	for _, h := range cur.Hosts {
		if !slices.Contains(prev.Hosts, h) {
			joined = append(joined, h)
		}
	}
	for _, h := range prev.Hosts {
		if !slices.Contains(cur.Hosts, h) {
			left = append(left, h)
		}
	}
	slices.Sort(joined)
	slices.Sort(left)
	return joined, left
}

// ParseMembers reads what Marshal wrote; nil for nothing.
func ParseMembers(data []byte) (*Members, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var m Members
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("the fleet of the last run: %w", err)
	}
	return &m, nil
}

// Marshal is m as the state file holds it.
func (m Members) Marshal() []byte {
	data, _ := json.Marshal(m)
	return append(data, '\n')
}
