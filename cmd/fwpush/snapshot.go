package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/inventory"
)

const snapshotUsage = "write the resolved inventory, every host written out, to this file: a static inventory any command takes in place of INVENTORY"

// addSnapshotFlag declares --inventory-snapshot on cmd.
func addSnapshotFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "inventory-snapshot", "", snapshotUsage)
}

// writeSnapshot writes the resolved inventory read from src to dst as a
// static inventory, with a comment saying where its hosts came from,
// when, and the fleet's digest. It replaces dst whole or not at all.
func writeSnapshot(inv *inventory.Inventory, src, dst string, now time.Time) error {
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return &usageError{fmt.Errorf("--inventory-snapshot %s is the inventory itself: write the snapshot to another file", dst)}
		}
	}
	from, err := filepath.Abs(filepath.Dir(src))
	if err != nil {
		return err
	}
	to, err := filepath.Abs(filepath.Dir(dst))
	if err != nil {
		return err
	}
	comment := []string{fmt.Sprintf("fwpush inventory snapshot of %s, resolved %s", src, now.UTC().Format(time.RFC3339))}
	if d := inv.DigitalOcean; d != nil {
		comment = append(comment, fmt.Sprintf("hosts from %s and DigitalOcean (%s, tags %s)", src, d.Endpoint, strings.Join(d.Tags(), ", ")))
	}
	comment = append(comment, "fleet digest "+inv.Digest(),
		"A static inventory: give it to any fwpush command to work on exactly this fleet.")
	data, err := inventory.Snapshot(inv, inventory.SnapshotOptions{Comment: comment, From: from, To: to})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(to, ".snapshot-*")
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("--inventory-snapshot: %w", err)}
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return &exitError{code: exitFailed, err: fmt.Errorf("--inventory-snapshot: %w", err)}
	}
	return nil
}
