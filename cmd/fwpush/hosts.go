package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/jedib0t/go-pretty/v6/table"
	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
)

func newHostsCmd() *cobra.Command {
	var asJSON bool
	var snapshot string
	cmd := &cobra.Command{
		Use:   "hosts [--json] [--inventory-snapshot FILE] INVENTORY",
		Short: "List the fleet: every host with its role, addresses and where it came from",
		Long: `hosts resolves the inventory as every command does — the hosts of the file,
and with [digitalocean] the droplets of its role tags, read from the API —
and lists each host with its role, site, addresses, and source: the file and
line it is written on, or the droplet it is. The last line is the fleet's
digest, which changes when a host joins, leaves or moves.

--inventory-snapshot writes the resolved inventory as a static one, which
any command takes in place of INVENTORY to work on exactly this fleet
without asking DigitalOcean again.

It contacts no host. Exit status 0; 3 when the inventory or a droplet is
invalid; 1 when the DigitalOcean API fails (nothing else was done).`,
		Example: `  fwpush hosts do.toml
  fwpush hosts --json do.toml | jq -r '.hosts[] | select(.role == "app") | .private_ip'
  fwpush hosts --inventory-snapshot fleet.toml do.toml && fwpush render fleet.toml`,
		Args: inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			inv, err := loadInventory(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, w := range inv.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w.Format(inv.Path))
			}
			if snapshot != "" {
				if err := writeSnapshot(inv, args[0], snapshot, time.Now()); err != nil {
					return err
				}
			}
			if asJSON {
				return printHostsJSON(cmd, inv)
			}
			printHosts(cmd, inv)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document on stdout")
	addSnapshotFlag(cmd, &snapshot)
	return cmd
}

func printHosts(cmd *cobra.Command, inv *inventory.Inventory) {
	w := cmd.OutOrStdout()
	t := table.NewWriter()
	t.SetOutputMirror(w)
	t.SetStyle(table.StyleDefault)
	t.Style().Options = table.OptionsNoBordersAndSeparators
	t.Style().Format.Header = 0 // as written
	header := table.Row{"host", "role"}
	if inv.HasSites() {
		header = append(header, "site")
	}
	t.AppendHeader(append(header, "public_ip", "public_ip6", "private_ip", "source"))
	for _, h := range inv.Hosts {
		row := table.Row{h.Name, h.Role}
		if inv.HasSites() {
			row = append(row, h.Site)
		}
		t.AppendRow(append(row, addrOrDash(h.PublicIP), addrOrDash(h.PublicIP6), addrOrDash(h.PrivateIP), inv.Origin(h)))
	}
	t.Render()
	fmt.Fprintf(w, "%s; fleet digest %s\n", pluralize(len(inv.Hosts), "host", "hosts"), inv.Digest())
}

func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

// jsonHosts is `fwpush hosts --json` (docs/json.md).
type jsonHosts struct {
	Schema    string          `json:"schema"`
	Command   string          `json:"command"`
	Inventory string          `json:"inventory"`
	Digest    string          `json:"digest"`
	Hosts     []jsonFleetHost `json:"hosts"`
}

type jsonFleetHost struct {
	Host      string `json:"host"`
	Role      string `json:"role"`
	Site      string `json:"site"`
	PublicIP  string `json:"public_ip,omitempty"`
	PublicIP6 string `json:"public_ip6,omitempty"`
	PrivateIP string `json:"private_ip,omitempty"`
	Source    string `json:"source"`
}

func printHostsJSON(cmd *cobra.Command, inv *inventory.Inventory) error {
	doc := jsonHosts{Schema: schemaVersion, Command: "hosts", Inventory: inv.Path, Digest: inv.Digest(), Hosts: []jsonFleetHost{}}
	for _, h := range inv.Hosts {
		doc.Hosts = append(doc.Hosts, jsonFleetHost{Host: h.Name, Role: h.Role, Site: h.Site,
			PublicIP: addrText(h.PublicIP), PublicIP6: addrText(h.PublicIP6), PrivateIP: addrText(h.PrivateIP),
			Source: inv.Origin(h)})
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
