package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/flows"
)

// diffReport is diff's --json document (docs/json.md).
type diffReport struct {
	Schema  string `json:"schema"`
	Command string `json:"command"`
	Old     string `json:"old"`
	New     string `json:"new"`
	flows.Diff
	ExitCode int `json:"exit_code"`
}

func newDiffCmd() *cobra.Command {
	var format string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff [flags] OLD NEW",
		Short: "Show the flows a change of the inventory opens and closes, offline",
		Long: `diff compares two inventories (the one in main and the one a pull request
proposes, say) by what they allow, not by how they are written: the flows
the change opens and closes (a source — a role, a CIDR, a bastion, or the
internet — to a role, on a protocol and port; an allow entry of three ports
is three flows), the hosts it adds and removes, and the hosts whose rules
change, with their number of rules (IPv4 and IPv6) before and after. It
compiles both, each with its own templates, and contacts nothing.

--format markdown writes it for a pull request's comment; --json as one
JSON document (docs/json.md).

Exit status: 0 the flows are the same (the rules may still differ: a
template changed, say); 2 they differ; 3 invalid input (either inventory).`,
		Example: `  git show main:site.toml > /tmp/site.main.toml
  fwpush diff /tmp/site.main.toml site.toml
  fwpush diff --format markdown /tmp/site.main.toml site.toml > comment.md
  fwpush diff --json old.toml new.toml | jq -r '.opened[] | "\(.from) -> \(.to) \(.proto)/\(.port)"'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("%s takes two inventory files, OLD and NEW, got %s", cmd.CommandPath(), pluralize(len(args), "argument", "arguments"))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "markdown" {
				return &usageError{fmt.Errorf("--format %q: text or markdown", format)}
			}
			l := newLoader(cmd, false)
			oldPlan, err := l.load(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			newPlan, err := l.load(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			d := flows.Compare(oldPlan, newPlan)
			code := exitOK
			if !d.Same() {
				code = exitChanges
			}
			w := cmd.OutOrStdout()
			switch {
			case asJSON:
				if err := writeJSON(w, diffReport{Schema: schemaVersion, Command: "diff", Old: args[0], New: args[1], Diff: d, ExitCode: code}); err != nil {
					return err
				}
			case format == "markdown":
				writeDiffMarkdown(w, args[0], args[1], &d)
			default:
				writeDiffText(w, &d)
			}
			return exitWith(code)
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "text, or markdown (for a pull request's comment)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	return cmd
}

func writeDiffText(w io.Writer, d *flows.Diff) {
	section := func(title string, n int) bool {
		if n == 0 {
			fmt.Fprintf(w, "%s: none\n", title)
			return false
		}
		fmt.Fprintf(w, "%s (%d):\n", title, n)
		return true
	}
	if section("flows opened", len(d.Opened)) {
		for _, f := range d.Opened {
			fmt.Fprintf(w, "  + %s\n", f)
		}
	}
	if section("flows closed", len(d.Closed)) {
		for _, f := range d.Closed {
			fmt.Fprintf(w, "  - %s\n", f)
		}
	}
	if section("hosts added", len(d.Added)) {
		for _, h := range d.Added {
			fmt.Fprintf(w, "  + %s (%s): %s\n", h.Host, h.Role, pluralize(h.After, "rule", "rules"))
		}
	}
	if section("hosts removed", len(d.Removed)) {
		for _, h := range d.Removed {
			fmt.Fprintf(w, "  - %s (%s): %s\n", h.Host, h.Role, pluralize(h.Before, "rule", "rules"))
		}
	}
	if section("hosts whose rules change", len(d.Changed)) {
		for _, h := range d.Changed {
			fmt.Fprintf(w, "  ~ %s (%s): %d -> %d rules\n", h.Host, h.Role, h.Before, h.After)
		}
	}
}

// writeDiffMarkdown writes the diff for a pull request's comment: a
// heading, then a table per part that is not empty.
func writeDiffMarkdown(w io.Writer, oldPath, newPath string, d *flows.Diff) {
	fmt.Fprintf(w, "### fwpush diff: `%s` → `%s`\n\n", mdCode(oldPath), mdCode(newPath))
	if d.Same() {
		fmt.Fprintln(w, "No flow is opened or closed.")
		fmt.Fprintln(w)
	}
	flowTable := func(title string, fs []flows.Flow) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(w, "**%s (%d)**\n\n| from | to | port |\n|---|---|---|\n", title, len(fs))
		for _, f := range fs {
			from := mdCell(f.From)
			if f.FromKind == flows.KindHost {
				from += " (host)"
			}
			fmt.Fprintf(w, "| %s | %s | %s/%s |\n", from, mdCell(f.To), f.Proto, f.Port)
		}
		fmt.Fprintln(w)
	}
	flowTable("Flows opened", d.Opened)
	flowTable("Flows closed", d.Closed)
	hosts := func(title string, hs []flows.Host) {
		if len(hs) == 0 {
			return
		}
		fmt.Fprintf(w, "**%s (%d)**\n\n| host | role | rules before | rules after |\n|---|---|---:|---:|\n", title, len(hs))
		for _, h := range hs {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", mdCell(h.Host), mdCell(h.Role), count(h.Before), count(h.After))
		}
		fmt.Fprintln(w)
	}
	hosts("Hosts added", d.Added)
	hosts("Hosts removed", d.Removed)
	hosts("Hosts whose rules change", d.Changed)
}

func count(n int) string {
	if n < 0 {
		return "–"
	}
	return fmt.Sprint(n)
}

// mdCell keeps a value from breaking a Markdown table.
func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// mdCode keeps a value inside a code span.
func mdCode(s string) string { return strings.ReplaceAll(s, "`", "'") }
