package digitalocean

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/fwpush/fwpush/digitalocean/fakeapi"
	"github.com/fwpush/fwpush/inventory"
)

const token = "dop_v1_test-token"

var roles = map[string]string{"lb": "lb", "app": "app", "web": "app", "db": "db", "tunnel": "tunnel"}

// fleet is the tutorial's fleet as droplets, with one droplet that has
// no role tag and one still being created.
func fleet() []fakeapi.Droplet {
	return []fakeapi.Droplet{
		{ID: 1, Name: "tunnel-1", Tags: []string{"tunnel"}, PublicIP: "203.0.113.10", PrivateIP: "198.18.0.10"},
		{ID: 2, Name: "haproxy-www", Tags: []string{"lb", "env:prod"}, PublicIP: "203.0.113.11", PrivateIP: "198.18.0.11", PublicIP6: "2001:db8::11"},
		{ID: 3, Name: "wordpress-1", Tags: []string{"app"}, PublicIP: "203.0.113.21", PrivateIP: "198.18.0.21"},
		{ID: 4, Name: "wordpress-2", Tags: []string{"app", "web"}, PublicIP: "203.0.113.22", PrivateIP: "198.18.0.22"},
		{ID: 5, Name: "wordpress-3", Tags: []string{"app"}, PublicIP: "203.0.113.23", PrivateIP: "198.18.0.23"},
		{ID: 6, Name: "mysql-1", Tags: []string{"db"}, PublicIP: "203.0.113.31", PrivateIP: "198.18.0.31"},
		{ID: 7, Name: "scratch", Tags: []string{"dev"}, PublicIP: "203.0.113.99"},
		{ID: 8, Name: "wordpress-4", Tags: []string{"app"}, Status: "new"},
	}
}

// start serves api and returns a client of it whose waits are recorded.
func start(t *testing.T, api *fakeapi.Server, cfg inventory.DigitalOcean) (*Client, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg.Endpoint = srv.URL
	if cfg.TokenEnv == "" {
		cfg.TokenEnv = inventory.DefaultTokenEnv
	}
	if cfg.Roles == nil {
		cfg.Roles = roles
	}
	c, err := New(cfg, token)
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c.wait = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, &waits
}

func found(name, role, tag string, id int, public, private, public6 string) inventory.Found {
	f := inventory.Found{Name: name, Role: role, Source: "digitalocean droplet " + strconv.Itoa(id) + " (tag " + tag + ")",
		PublicIP: netip.MustParseAddr(public), PrivateIP: netip.MustParseAddr(private)}
	if public6 != "" {
		f.PublicIP6 = netip.MustParseAddr(public6)
	}
	return f
}

// Every droplet with a role tag is a host, read over as many pages as the
// API hands out, whatever else it is tagged with; two tags of one role
// are one role; a droplet being created is left out with a note.
func TestHosts(t *testing.T) {
	api := fakeapi.New(fleet()...)
	api.Token = token
	api.PerPage = 2
	c, _ := start(t, api, inventory.DigitalOcean{})
	hosts, notes, err := c.Hosts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []inventory.Found{
		found("haproxy-www", "lb", "lb", 2, "203.0.113.11", "198.18.0.11", "2001:db8::11"),
		found("mysql-1", "db", "db", 6, "203.0.113.31", "198.18.0.31", ""),
		found("tunnel-1", "tunnel", "tunnel", 1, "203.0.113.10", "198.18.0.10", ""),
		found("wordpress-1", "app", "app", 3, "203.0.113.21", "198.18.0.21", ""),
		found("wordpress-2", "app", "app", 4, "203.0.113.22", "198.18.0.22", ""),
		found("wordpress-3", "app", "app", 5, "203.0.113.23", "198.18.0.23", ""),
	}
	if diff := cmp.Diff(want, hosts, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"droplet wordpress-4 (id 8) is new: left out until it is active"}, notes); diff != "" {
		t.Errorf("notes (-want +got):\n%s", diff)
	}
	// app has 4 droplets, 2 a page: page 2 is asked for by following
	// links.pages.next; each tag is asked for once.
	var app []string
	for _, r := range api.Requests() {
		if strings.Contains(r, "tag_name=app") {
			app = append(app, r)
		}
	}
	wantApp := []string{"/v2/droplets?page=1&per_page=200&tag_name=app", "/v2/droplets?page=2&per_page=200&tag_name=app"}
	if diff := cmp.Diff(wantApp, app); diff != "" {
		t.Errorf("requests for tag app (-want +got):\n%s", diff)
	}
	if n := len(api.Requests()); n != 6 {
		t.Errorf("%d requests, want 6 (app 2, db 1, lb 1, tunnel 1, web 1): %q", n, api.Requests())
	}
}

// A 429 is sent again after the Retry-After it gives, in seconds or as a
// date, a few times; then, or for a wait too long, one line says so.
func TestHostsRateLimited(t *testing.T) {
	t.Run("retried after Retry-After", func(t *testing.T) {
		api := fakeapi.New(fleet()...)
		api.RateLimit("3", "", time.Now().Add(10*time.Second).UTC().Format(http.TimeFormat))
		c, waits := start(t, api, inventory.DigitalOcean{Roles: map[string]string{"app": "app"}})
		hosts, _, err := c.Hosts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(hosts) != 3 {
			t.Errorf("%d hosts after the retries, want 3", len(hosts))
		}
		w := *waits
		if len(w) != 3 || w[0] != 3*time.Second || w[1] != defaultRetryWait || w[2] < 8*time.Second || w[2] > 10*time.Second {
			t.Errorf("waited %v, want [3s %s ~10s]", w, defaultRetryWait)
		}
	})
	for _, tc := range []struct {
		name    string
		limited []string
		want    string
		waits   int
	}{
		{"too often", []string{"1", "1", "1", "1"}, "digitalocean: droplets tagged app: rate-limited (429) 4 times in a row: try again later", 3},
		{"too long", []string{"3600"}, "digitalocean: droplets tagged app: rate-limited (429) for 1h0m0s, longer than fwpush waits (1m0s): try again later", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := fakeapi.New(fleet()...)
			api.RateLimit(tc.limited...)
			c, waits := start(t, api, inventory.DigitalOcean{Roles: map[string]string{"app": "app"}})
			_, _, err := c.Hosts(t.Context())
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v, want %s", err, tc.want)
			}
			if len(*waits) != tc.waits {
				t.Errorf("waited %v, want %d waits", *waits, tc.waits)
			}
		})
	}
}

// Every failure of the API is one line, with the API's own words, and no
// token in it.
func TestHostsAPIErrors(t *testing.T) {
	api := fakeapi.New(fleet()...)
	api.Token = "another-token"
	c, _ := start(t, api, inventory.DigitalOcean{TokenEnv: "DO_TOKEN"})
	_, _, err := c.Hosts(t.Context())
	want := "digitalocean: droplets tagged app: 401 Unauthorized: Unable to authenticate you (the token in $DO_TOKEN)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
	errs := []error{err}

	srv := httptest.NewServer(api)
	srv.Close() // nothing listens there any more
	c, err = New(inventory.DigitalOcean{Endpoint: srv.URL, Roles: roles, TokenEnv: "DO_TOKEN"}, token)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Hosts(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "digitalocean: droplets tagged app: ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %v, want one saying the connection was refused", err)
	}
	errs = append(errs, err)

	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(stuck.Close)
	c, err = New(inventory.DigitalOcean{Endpoint: stuck.URL, Roles: roles}, token)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := c.Hosts(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v after the context ended, want context.DeadlineExceeded", err)
	}

	for _, e := range errs {
		if e != nil && (strings.Contains(e.Error(), token) || strings.Contains(e.Error(), "\n")) {
			t.Errorf("error %q holds the token or a newline", e)
		}
	}
}

// Droplets that cannot be hosts as they are are each named.
func TestHostsInvalidDroplets(t *testing.T) {
	api := fakeapi.New(append(fleet(),
		fakeapi.Droplet{ID: 9, Name: "both", Tags: []string{"app", "db"}, PrivateIP: "198.18.0.90"},
		fakeapi.Droplet{ID: 10, Name: "far", Tags: []string{"db"}, Region: "sgp1", PrivateIP: "198.18.0.91"},
	)...)
	c, _ := start(t, api, inventory.DigitalOcean{Sites: map[string]string{"nyc1": "east"}})
	_, _, err := c.Hosts(t.Context())
	var inv *Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("error %v is a %T, want *Invalid", err, err)
	}
	want := []string{
		"droplet both (id 9) has the tags app and db, which name different roles: give it the tag of one",
		`droplet far (id 10) is in region "sgp1", which digitalocean.sites puts in no site`,
	}
	if diff := cmp.Diff(want, inv.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
