package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/digitalocean/fakeapi"
	"github.com/fwpush/fwpush/inventory"
)

// defaultFakeDOListen is where lab fake-do listens: inside the lab's
// controller, each lab has its own loopback.
const defaultFakeDOListen = "127.0.0.1:8086"

// newLabFakeDOCmd is `fwpush lab fake-do`, hidden: a rehearsal aid for
// the lab and make demo, not an operator's command.
func newLabFakeDOCmd() *cobra.Command {
	var listen, token string
	cmd := &cobra.Command{
		Use:   "fake-do [--listen ADDR] [--token TOKEN] INVENTORY",
		Short: "Serve a fake DigitalOcean API whose droplets are a static inventory's hosts",
		Long: `fake-do serves GET /v2/droplets as DigitalOcean's API does (tag_name,
paging, a 401 without a token), with a droplet for every host of INVENTORY, a
static inventory: tagged with its role's name, in the region named as its
site (nyc1 without sites), with its addresses. The file is read again for
every request: add a host to it and the API has a new droplet; remove one and
the droplet is destroyed. It serves until interrupted.

Run it inside a lab, where the lab's hosts are, and point an inventory's
[digitalocean] endpoint at it (http://127.0.0.1:8086).`,
		Example: `  fwpush lab exec cloud.toml -- fwpush lab fake-do cloud.toml &
  DIGITALOCEAN_TOKEN=lab fwpush lab exec cloud.toml -- fwpush run do.toml`,
		Hidden: true,
		Args:   inventoryArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			load := func() ([]fakeapi.Droplet, error) {
				inv, err := inventory.Load(path)
				if err != nil {
					return nil, err
				}
				return fakeapi.FromInventory(inv, 1001), nil
			}
			if _, err := load(); err != nil {
				return err
			}
			api := &fakeapi.Server{Token: token, Load: load}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return &usageError{fmt.Errorf("--listen: %w", err)}
			}
			srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
			ctx := cmd.Context()
			go func() {
				<-ctx.Done()
				srv.Close()
			}()
			fmt.Fprintf(cmd.OutOrStdout(), "fake DigitalOcean API on http://%s: the droplets are the hosts of %s\n", ln.Addr(), path)
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", defaultFakeDOListen, "address to listen on")
	cmd.Flags().StringVar(&token, "token", "", "the only token it accepts (default: any)")
	return cmd
}
