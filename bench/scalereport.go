package bench

import (
	"fmt"
	"strings"
)

// The targets of issue 18 that the scale part measures.
const (
	targetHosts    = 10000
	targetWall     = 3.0 // seconds, validate of targetHosts
	targetRSSMiB   = 512
	identicalSmall = 50
	identicalLarge = 5000
)

// ScaleMarkdown is the scale part of the results as its section of
// BENCHMARKS.md: time and memory at each size, the size of the
// policies, and the targets of issue 18.
func ScaleMarkdown(r *Results) string {
	var b strings.Builder
	m := r.Machine
	sizes := make([]int, len(r.Scale))
	load := [2]float64{}
	for i, s := range r.Scale {
		sizes[i] = s.Hosts
		load = widen(widen(load, s.Load[0]), s.Load[1])
	}
	fmt.Fprintf(&b, "## Scale: compile and validate, %s hosts\n\n", joinInts(sizes))
	fmt.Fprintf(&b, "Measured by `make bench` (the scale part of `go run ./bench/cmd/fwbench`, no lab) on %s UTC: the inventory of `lab.FleetTOML` "+
		"(the example roles: a tunnel, a load balancer, then app and db servers two to one) at each size, with sets (the default), "+
		"%d run%s of each, the sizes interleaved; every number is the median, with the least and the greatest in brackets.\n\n",
		r.Date.Format("2006-01-02 15:04"), r.ScaleRuns, plural(r.ScaleRuns))
	writeMachine(&b, m, m.Iptables, m.IPSet)
	fmt.Fprintf(&b, "The machine's 1-minute load average before the runs went from %.1f to %.1f: it is shared with other work, "+
		"and a wall time is its CPU time stretched by the load.\n", load[0], load[1])

	b.WriteString("\n### Time and memory\n\n")
	header(&b, sizes)
	row := func(label string, cell func(*Scale) string) {
		fmt.Fprintf(&b, "| %s |", label)
		for _, s := range r.Scale {
			fmt.Fprintf(&b, " %s |", cell(s))
		}
		b.WriteString("\n")
	}
	row("compile (every host's policy, in the bench's process): wall, s", func(s *Scale) string { return rangeOf(s.Compile, wallOf, secs) })
	row("compile: CPU (user + system), s", func(s *Scale) string { return rangeOf(s.Compile, cpuOf, secs) })
	row("compile: allocated", func(s *Scale) string { return mib(stat(values(s.Compile, rssOf)).Median) })
	row("`fwpush validate`: wall, s", func(s *Scale) string { return rangeOf(s.Validate, wallOf, secs) })
	row("`fwpush validate`: CPU (user + system, with ipset's and iptables-restore's), s", func(s *Scale) string { return rangeOf(s.Validate, cpuOf, secs) })
	row("`fwpush validate`: peak RSS", func(s *Scale) string { return mib(stat(values(s.Validate, rssOf)).Median) })
	b.WriteString(`
The compile is ` + "`roles.CompileHosts`" + ` of every host with ` + "`roles.Default()`" + `:
render each policy, parse it, match its sets and check it cannot lock fwpush
out (the inventory already read; its allocations from Go's own count).
` + "`fwpush validate`" + ` is the whole command as an operator runs it, from the
bench's launcher (bench/cmd/fwbench-launch, as for the pushes): it reads the
inventory, compiles every policy, then loads each distinct set with ` + "`ipset restore`" + `
and each distinct policy with iptables-restore and ip6tables-restore, each batch in a
throwaway network namespace; the bench checks that it says it loaded all of them.
`)

	b.WriteString("\n### The size of the policies\n\n")
	header(&b, sizes)
	first := r.Scale[0]
	row(fmt.Sprintf("rules (`-A`) in %s's IPv4 filter table", scaleApp), func(s *Scale) string {
		if s != first && s.AppRulesDigest == first.AppRulesDigest {
			return fmt.Sprintf("%d, identical", s.AppRules)
		}
		return fmt.Sprint(s.AppRules)
	})
	row(fmt.Sprintf("%s's sets (their members)", scaleApp), func(s *Scale) string { return fmt.Sprintf("%d (%d)", s.AppSets, s.AppMembers) })
	row(fmt.Sprintf("an app server added: %s's rules (IPv4 and IPv6)", scaleDB), func(s *Scale) string {
		return fmt.Sprintf("+%d −%d", s.DB.RulesAdded, s.DB.RulesRemoved)
	})
	row(fmt.Sprintf("an app server added: %s's sets", scaleDB), func(s *Scale) string {
		return fmt.Sprintf("%d made; members +%d −%d", s.DB.SetsMade, s.DB.MembersAdded, s.DB.MembersRemoved)
	})
	fmt.Fprintf(&b, "\n\"identical\": the same rules, line for line, as at %d hosts. "+
		"The app server added is one more host of role app (`app-added`) in the same inventory; "+
		"%s's policy is compiled again and compared with the one before: its rules as lines, its sets with `policy.DiffSets`, "+
		"what a run's decision compares on the host.\n", first.Hosts, scaleDB)

	if rows := scaleTargets(r); len(rows) > 0 {
		b.WriteString("\n### The targets of issue 18\n\n| target | measured | |\n|---|---|---|\n")
		for _, row := range rows {
			b.WriteString(row)
		}
	}
	return b.String()
}

// scaleTargets are the rows of the targets the sizes measured can tell.
func scaleTargets(r *Results) []string {
	var rows []string
	at := func(n int) *Scale {
		for _, s := range r.Scale {
			if s.Hosts == n {
				return s
			}
		}
		return nil
	}
	if s := at(targetHosts); s != nil && len(s.Validate) > 0 {
		wall := stat(values(s.Validate, wallOf)).Median
		rss := stat(values(s.Validate, rssOf)).Median / (1 << 20)
		st := stat(values(s.Validate, wallOf))
		rows = append(rows, fmt.Sprintf("| `fwpush validate` of %d hosts ≤ %.0f s, ≤ %d MiB RSS | %s s (%s–%s), %.0f MiB; CPU %s s, at a load average of %.1f to %.1f | %s |\n",
			targetHosts, targetWall, targetRSSMiB, secs(wall), secs(st.Min), secs(st.Max), rss, secs(stat(values(s.Validate, cpuOf)).Median), s.Load[0], s.Load[1],
			metIf(wall <= targetWall && rss <= targetRSSMiB)))
	}
	if a, b := at(identicalSmall), at(identicalLarge); a != nil && b != nil {
		rows = append(rows, fmt.Sprintf("| rules in an app server's IPv4 filter table, %d vs %d hosts: identical | %d and %d, %s | %s |\n",
			identicalSmall, identicalLarge, a.AppRules, b.AppRules, map[bool]string{true: "identical", false: "different"}[a.AppRulesDigest == b.AppRulesDigest],
			metIf(a.AppRulesDigest == b.AppRulesDigest)))
	}
	only := len(r.Scale) > 0
	for _, s := range r.Scale {
		only = only && s.DB.RulesAdded == 0 && s.DB.RulesRemoved == 0 && s.DB.SetsMade == 0 && s.DB.MembersAdded == 1 && s.DB.MembersRemoved == 0
	}
	if len(r.Scale) > 0 {
		rows = append(rows, fmt.Sprintf("| an app server added: what changes on a db server is set members only | %s at every size | %s |\n",
			map[bool]string{true: "one member added, no rule, no set", false: "see above"}[only], metIf(only)))
	}
	return rows
}

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func wallOf(s Sample) float64 { return s.Wall.Seconds() }
func cpuOf(s Sample) float64  { return s.CPU.Seconds() }
func rssOf(s Sample) float64  { return float64(s.MaxRSS) }

func values(samples []Sample, f func(Sample) float64) []float64 {
	out := make([]float64, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

// rangeOf is "median (least–greatest)" of the samples' values, each
// written by format.
func rangeOf(samples []Sample, f func(Sample) float64, format func(float64) string) string {
	if len(samples) == 0 {
		return "–"
	}
	st := stat(values(samples, f))
	if len(samples) == 1 {
		return format(st.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", format(st.Median), format(st.Min), format(st.Max))
}

func mib(bytes float64) string {
	if bytes == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f MiB", bytes/(1<<20))
}
