package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/internal/english"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/lab"
)

// registerCompletions teaches shell completion (fwpush completion bash|zsh|
// fish) what the commands take: each positional argument as its command's
// Use line names it (INVENTORY: a .toml file; HOST and FROM: the
// inventory's hosts; DIR: a directory; after "--": anything), --limit (host and role names, in a pattern) and
// --host, --via (the bastions). Names come from the inventory already on the command line, so
// it goes first: fwpush run site.toml --limit <TAB>.
func registerCompletions(c *cobra.Command) {
	if c.ValidArgsFunction == nil && c.Runnable() {
		c.ValidArgsFunction = completeArgs(positionals(c.Use))
	}
	for flag, complete := range map[string]cobra.CompletionFunc{"limit": completeLimit, "host": completeHost, "via": completeVia} {
		if c.Flags().Lookup(flag) != nil {
			_ = c.RegisterFlagCompletionFunc(flag, complete) // fails only for an unknown flag
		}
	}
	if c.Flags().Lookup("out") != nil {
		_ = c.MarkFlagDirname("out")
	}
	for _, sub := range c.Commands() {
		registerCompletions(sub)
	}
}

// positionals returns the positional arguments a Use line names, up to a
// "--" ("shell INVENTORY HOST -- COMMAND" gives INVENTORY, HOST, --).
func positionals(use string) []string {
	var out []string
	for _, w := range strings.Fields(use)[1:] {
		if strings.HasPrefix(w, "[") || strings.HasSuffix(w, "]") {
			continue // [flags], [--host NAME]
		}
		out = append(out, w)
		if w == "--" {
			break
		}
	}
	return out
}

func completeArgs(words []string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) >= len(words) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		switch words[len(args)] {
		case "--":
			return nil, cobra.ShellCompDirectiveDefault // a command line
		case "INVENTORY":
			return []cobra.Completion{"toml"}, cobra.ShellCompDirectiveFilterFileExt
		case "HOST":
			return completeHost(cmd, args, toComplete)
		case "FROM":
			names, dir := completeHost(cmd, args, toComplete)
			outsiders := []string{lab.Controller, lab.Stranger}
			if inv := completionInventory(args); inv != nil && inv.HasSites() {
				for _, s := range inv.Sites {
					outsiders = append(outsiders, lab.StrangerOf(s.Name))
				}
			}
			for _, n := range outsiders {
				if strings.HasPrefix(n, toComplete) {
					names = append(names, n)
				}
			}
			return names, dir
		case "DIR":
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completionInventory loads the inventory named on the command line, if
// any and if it loads.
func completionInventory(args []string) *inventory.Inventory {
	if len(args) == 0 {
		return nil
	}
	inv, err := inventory.Load(args[0])
	if err != nil {
		return nil
	}
	return inv
}

func completeHost(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := completionInventory(args)
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, h := range inv.Hosts {
		if strings.HasPrefix(h.Name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(h.Name, "role "+h.Role))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeLimit completes the last term of a --limit pattern, keeping what
// comes before it and its '!' or '&'.
func completeLimit(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := completionInventory(args)
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cut := strings.LastIndexAny(toComplete, ",:") + 1
	before, term := toComplete[:cut], toComplete[cut:]
	op := ""
	if strings.HasPrefix(term, "!") || strings.HasPrefix(term, "&") {
		op, term = term[:1], term[1:]
	}
	used := strings.FieldsFunc(before, func(r rune) bool { return r == ',' || r == ':' || r == '!' || r == '&' })
	var out []cobra.Completion
	add := func(name, desc string) {
		if strings.HasPrefix(name, term) && !slices.Contains(used, name) {
			out = append(out, cobra.CompletionWithDesc(before+op+name, desc))
		}
	}
	for _, r := range inv.Roles {
		add(r.Name, fmt.Sprintf("role, %s", english.Count(len(inv.HostsOf(r.Name)), "host")))
	}
	for _, s := range inv.Sites {
		if !inv.HasSites() {
			break // the one default site has no name
		}
		n := 0
		for _, h := range inv.Hosts {
			if h.Site == s.Name {
				n++
			}
		}
		add(s.Name, fmt.Sprintf("site, %s", english.Count(n, "host")))
	}
	for _, h := range inv.Hosts {
		add(h.Name, "host, role "+h.Role)
	}
	// No space after a name: a pattern goes on with ',' ("db,!mysql-2").
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeVia completes --via with the inventory's bastions.
func completeVia(_ *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	inv := completionInventory(args)
	if inv == nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, h := range inv.Hosts {
		if inv.IsBastion(h) && strings.HasPrefix(h.Name, toComplete) {
			desc := "bastion"
			if h.Site != "" {
				desc += " of site " + h.Site
			}
			out = append(out, cobra.CompletionWithDesc(h.Name, desc))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// commaBash replaces the bash script of cobra's completion command with
// one that completes after a comma: fwpush run site.toml --limit db,my<TAB>.
// cobra's script escapes each completion with printf %q before matching
// it against what was typed, and %q writes a comma as "\,": "db\,mysql-1"
// never matched "db,my". A comma means nothing to bash outside braces, so
// the script leaves it as it is. The script needs the bash-completion
// package, as cobra's does.
func commaBash(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		for _, bash := range c.Commands() {
			if bash.Name() != "bash" {
				continue
			}
			bash.RunE = func(cmd *cobra.Command, _ []string) error {
				noDesc, _ := cmd.Flags().GetBool("no-descriptions") // false when cobra has no such flag
				var b bytes.Buffer
				if err := cmd.Root().GenBashCompletionV2(&b, !noDesc); err != nil {
					return err
				}
				script, err := bashKeepsCommas(b.String())
				if err != nil {
					return err
				}
				_, err = fmt.Fprint(cmd.OutOrStdout(), script)
				return err
			}
		}
	}
}

// bashKeepsCommas unescapes the commas printf %q escapes in cobra's bash
// script: in the completions matched against what was typed, and in the
// one inserted on the command line.
func bashKeepsCommas(script string) (string, error) {
	const unescape = `//\\,/,}`
	edits := []struct{ line, add string }{
		{`printf -v comp "%q" "${compline%%$tab*}" &>/dev/null || comp=$(printf "%q" "${compline%%$tab*}")`, "\n        comp=${comp" + unescape},
		{`COMPREPLY[0]=$(printf "%q" "${COMPREPLY[0]%%$tab*}")`, "\n        COMPREPLY[0]=${COMPREPLY[0]" + unescape},
		{`COMPREPLY[0]=$(printf "%q" "${COMPREPLY[0]}")`, "\n            COMPREPLY[0]=${COMPREPLY[0]" + unescape},
	}
	for _, e := range edits {
		if strings.Count(script, e.line) != 1 {
			return "", errors.New("completion bash: cobra's script is not the one fwpush knows how to make keep commas")
		}
		script = strings.Replace(script, e.line, e.line+e.add, 1)
	}
	return script, nil
}
