package runner

import (
	"fmt"
	"slices"
	"strings"
)

// What the fake hosts do of ipset: their sets are a save (what `ipset
// save` prints of fwpush's sets), which the documents of an apply change
// as ipset restore would (see change.SetDocs): create (-exist), add,
// destroy (-exist) and swap, stopping at the first line that fails.

// fakeSet is one set of a fake host.
type fakeSet struct {
	create  string // what follows the name on its create line
	members []string
}

// ipsetRestore is save once ipset restore has run doc.
func ipsetRestore(save, doc string) (string, error) {
	sets := map[string]*fakeSet{}
	var order []string
	if _, err := ipsetRun(sets, &order, save); err != nil {
		return save, fmt.Errorf("the fake's own save: %w", err)
	}
	n, err := ipsetRun(sets, &order, doc)
	var b strings.Builder
	slices.Sort(order)
	for _, name := range order {
		s := sets[name]
		fmt.Fprintf(&b, "create %s %s\n", name, s.create)
		for _, m := range s.members {
			fmt.Fprintf(&b, "add %s %s\n", name, m)
		}
	}
	if err != nil {
		return b.String(), fmt.Errorf("ipset v7.17: Error in line %d: %w", n, err)
	}
	return b.String(), nil
}

// ipsetRun runs the lines of doc on sets (their names in order), up to
// the first that fails, whose number it returns.
func ipsetRun(sets map[string]*fakeSet, order *[]string, doc string) (int, error) {
	n := 0
	for line := range strings.Lines(doc) {
		n++
		f := strings.Fields(line)
		exist := slices.Contains(f, "-exist")
		f = slices.DeleteFunc(f, func(s string) bool { return s == "-exist" })
		if len(f) < 2 {
			return n, fmt.Errorf("%q?", line)
		}
		s, ok := sets[f[1]]
		switch f[0] {
		case "create":
			if ok {
				if !exist {
					return n, fmt.Errorf("set %s exists", f[1])
				}
				continue
			}
			sets[f[1]] = &fakeSet{create: strings.Join(f[2:], " ")}
			*order = append(*order, f[1])
		case "add":
			if !ok || len(f) != 3 {
				return n, fmt.Errorf("no set %s", f[1])
			}
			if !slices.Contains(s.members, f[2]) {
				s.members = append(s.members, f[2])
			}
		case "destroy":
			if !ok {
				if !exist {
					return n, fmt.Errorf("no set %s", f[1])
				}
				continue
			}
			delete(sets, f[1])
			*order = slices.DeleteFunc(*order, func(s string) bool { return s == f[1] })
		case "swap":
			t, tok := sets[f[len(f)-1]]
			if !ok || !tok || len(f) != 3 {
				return n, fmt.Errorf("cannot swap %s", line)
			}
			sets[f[1]], sets[f[2]] = t, s
		default:
			return n, fmt.Errorf("%q?", line)
		}
	}
	return n, nil
}
