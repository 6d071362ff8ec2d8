package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/fwpush/fwpush/digitalocean"
	"github.com/fwpush/fwpush/inventory"
)

// loadInventory reads the inventory at path and resolves it: the hosts
// its source reports ([digitalocean]) join those of the file, and the
// whole fleet is validated. Every command that takes an inventory comes
// through here, so that they all see the same fleet, and the source is
// read before any host is contacted. Its errors: an invalid inventory or
// droplet (*inventory.Error, exit 3), an unset token variable (exit 3),
// a source that fails (one line, exit 1: the input may be right, the API
// did not answer it), a signal (interrupted).
func loadInventory(ctx context.Context, path string) (*inventory.Inventory, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &exitError{code: exitInvalid, err: fmt.Errorf("read inventory: %w", err)}
	}
	f, err := inventory.Decode(path, data)
	if err != nil {
		return nil, err
	}
	if f.DigitalOcean == nil {
		return f.Resolve(nil, nil)
	}
	found, notes, err := readDigitalOcean(ctx, f)
	if err != nil {
		return nil, err
	}
	return f.Resolve(found, notes)
}

// readDigitalOcean lists the droplets of the inventory's role tags.
func readDigitalOcean(ctx context.Context, f *inventory.File) ([]inventory.Found, []string, error) {
	cfg := f.DigitalOcean
	token := os.Getenv(cfg.TokenEnv)
	if token == "" {
		return nil, nil, f.Invalid("digitalocean.token_env", fmt.Sprintf("$%s is not set: put a DigitalOcean API token in it (read access is enough)", cfg.TokenEnv))
	}
	c, err := digitalocean.New(*cfg, token)
	if err != nil {
		return nil, nil, &exitError{code: exitInvalid, err: err}
	}
	found, notes, err := c.Hosts(ctx)
	if err != nil {
		var bad *digitalocean.Invalid
		switch {
		case ctx.Err() != nil:
			return nil, nil, interrupted(ctx, "reading the droplets from DigitalOcean")
		case errors.As(err, &bad):
			return nil, nil, f.Invalid("digitalocean", bad.Problems...)
		}
		return nil, nil, &exitError{code: exitFailed, err: fmt.Errorf("%s: %w; no host contacted", f.Name(), err)}
	}
	return found, notes, nil
}
