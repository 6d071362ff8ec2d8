package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/runner"
)

type historyFlags struct {
	conn          connFlags
	limit         string
	last          int
	since         string
	asJSON        bool
	askBecomePass bool
}

func newHistoryCmd() *cobra.Command {
	var f historyFlags
	cmd := &cobra.Command{
		Use:   "history [flags] INVENTORY",
		Short: "Show what fwpush changed on the fleet, and who, when and from which inventory",
		Long: `history reads the history every host keeps of what fwpush changed on it,
/var/lib/fwpush/history: one line per change (applied, drift repaired,
rolled back, failed), appended by the host itself in the round trip that
learned how the change ended, with the host's time, who ran fwpush
(user@machine), fwpush's version, the digests of the fleet and of the
policy, the rules added and removed, and the hosts that joined or left the
fleet since the run before. A host left unchanged records nothing. Each
host keeps about 512 KiB of it (history, and history.1 before it).

It reads every host (--limit: those it selects) over SSH as run does,
through the bastions and under sudo, one round trip each that changes
nothing, and prints every change in time order: a table, or with --json
one JSON object a line (see docs/json.md). --since keeps the changes since
a time (7d, 36h, 2026-12-01), --last the last N.

Exit status: 0 every host read; 1 a host could not be read (the others'
changes are still printed); 3 invalid input (nothing contacted).`,
		Example: `  fwpush history site.toml
  fwpush history --since 7d site.toml
  fwpush history -l mysql-2 --last 5 site.toml     # who changed mysql-2's firewall last
  fwpush history --json site.toml | jq -r 'select(.outcome == "rolled_back") | .host'`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd, args[0], f)
		},
	}
	f.conn.register(cmd)
	registerLimit(cmd, &f.limit)
	cmd.Flags().IntVarP(&f.last, "last", "n", 0, "only the last N changes (0: all)")
	cmd.Flags().StringVar(&f.since, "since", "", "only the changes since then: a duration back from now (7d, 2w, 36h), a date (2026-12-01) or a time (RFC 3339)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print one JSON object a line, a change each (see docs/json.md)")
	cmd.Flags().BoolVarP(&f.askBecomePass, "ask-become-pass", "K", false, "ask once for the password sudo wants on the hosts (or set $FWPUSH_BECOME_PASS)")
	return cmd
}

func runHistory(cmd *cobra.Command, path string, f historyFlags) error {
	ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.last < 0 {
		return &inputError{fmt.Errorf("--last %d: want 0 (all) or more", f.last)}
	}
	since, err := history.ParseSince(f.since, time.Now())
	if err != nil {
		return &inputError{fmt.Errorf("--since %s: %w", f.since, err)}
	}
	inv, err := loadInventory(ctx, path)
	if err != nil {
		return err
	}
	var ssh sshOverrides // $FWPUSH_PARALLEL and $FWPUSH_TIMEOUT, as run
	if err := ssh.apply(inv); err != nil {
		return err
	}
	hosts, err := selectHosts(inv, f.limit)
	if err != nil {
		return err
	}
	opts, err := f.conn.options(inv, stderr)
	if err != nil {
		return err
	}
	pass, err := becomePass(f.askBecomePass)
	if err != nil {
		return err
	}
	fleet, err := openFleet(inv, opts, pass, f.conn.via, stderr)
	if err != nil {
		return err
	}
	defer fleet.Close()

	results := runner.ReadHistory(ctx, inv, hosts, fleet, 0, opts.Logger)
	var lists [][]history.Entry
	failed := 0
	for _, r := range results {
		lists = append(lists, r.Entries)
		if r.Bad > 0 {
			fmt.Fprintf(stderr, "fwpush: host %s: %s of its history could not be read, left out\n", r.Host, english.Count(r.Bad, "line"))
		}
		if r.Err != nil {
			failed++
		}
	}
	entries := history.Filter(history.Merge(lists...), since, f.last)
	if f.asJSON {
		err = writeHistoryJSON(stdout, entries)
	} else {
		writeHistoryTable(stdout, entries)
	}
	if err != nil {
		return err
	}
	// Who could not be read: in the report, as run's errors; with --json,
	// whose stdout is the lines alone, on stderr.
	errs := stdout
	if f.asJSON {
		errs = stderr
	}
	for _, r := range results {
		// Hosts not tried share one cause, which the fleet said as it
		// opened (see openFleet).
		if r.Err != nil && r.Status != runner.NotTried {
			fmt.Fprintf(errs, "error: %s: %v\n", r.Status, r.Err)
		}
	}
	if failed > 0 {
		if ctx.Err() != nil {
			return exitWith(interruptCode(ctx))
		}
		return exitWith(exitFailed)
	}
	return nil
}

// writeHistoryTable prints the changes as a table, in time order.
func writeHistoryTable(w io.Writer, entries []history.Entry) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "no change recorded")
		return
	}
	st := styleFor(w)
	t := table.NewWriter()
	t.SetOutputMirror(w)
	// The fleet's changes, when any line has them: "+app-3 -app-1".
	fleet := slices.ContainsFunc(entries, func(e history.Entry) bool { return len(e.Joined)+len(e.Left) > 0 })
	header := table.Row{"time", "host", "outcome", "who", "rules", "inventory"}
	if fleet {
		header = append(header, "fleet")
	}
	t.AppendHeader(header)
	for _, e := range entries {
		row := table.Row{e.Time.UTC().Format(time.RFC3339), e.Host, e.Outcome, e.Who,
			fmt.Sprintf("+%d -%d", e.Added, e.Removed), history.Short(e.Inventory)}
		if fleet {
			var change []string
			for _, h := range e.Joined {
				change = append(change, "+"+h)
			}
			for _, h := range e.Left {
				change = append(change, "-"+h)
			}
			row = append(row, strings.Join(change, " "))
		}
		t.AppendRow(row)
	}
	if st.tty {
		t.SetStyle(table.StyleLight)
	} else {
		t.SetStyle(table.StyleDefault)
		t.Style().Options = table.OptionsNoBordersAndSeparators
	}
	t.Render()
}

// writeHistoryJSON prints the changes one JSON object a line, in time
// order.
func writeHistoryJSON(w io.Writer, entries []history.Entry) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return nil
}
