package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const doFile = "testdata/do.toml"

// droplet is a host as package digitalocean reports one.
func droplet(name, role, public, private, public6 string, id int) Found {
	f := Found{Name: name, Role: role, Source: "digitalocean droplet " + strings.Repeat("1", id) + " (tag " + role + ")"}
	if public != "" {
		f.PublicIP = addr(public)
	}
	if private != "" {
		f.PrivateIP = addr(private)
	}
	if public6 != "" {
		f.PublicIP6 = addr(public6)
	}
	return f
}

// The droplets of testdata/do.toml's fleet: every one has a public
// address, as droplets do.
func droplets() []Found {
	return []Found{
		droplet("tunnel-1", "tunnel", "203.0.113.10", "198.18.0.10", "", 1),
		droplet("haproxy-www", "lb", "203.0.113.11", "198.18.0.11", "2001:db8::11", 2),
		droplet("wordpress-1", "app", "203.0.113.21", "198.18.0.21", "2001:db8::21", 3),
		droplet("mysql-1", "db", "203.0.113.31", "198.18.0.31", "", 4),
	}
}

func decodeFile(t *testing.T, path string) *File {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(path, data)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The droplets join the file's own hosts, each with its source, and the
// public addresses of droplets in private roles, which nobody wrote, do
// not warn.
func TestResolveAddsFoundHosts(t *testing.T) {
	f := decodeFile(t, doFile)
	want := &DigitalOcean{TokenEnv: DefaultTokenEnv, Endpoint: DefaultEndpoint,
		Roles: map[string]string{"lb": "lb", "app": "app", "db": "db", "tunnel": "tunnel"}}
	if diff := cmp.Diff(want, f.DigitalOcean); diff != "" {
		t.Errorf("[digitalocean] (-want +got):\n%s", diff)
	}
	inv, err := f.Resolve(droplets(), []string{"droplet web-9 (id 9) is new: left out until it is active"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range inv.Hosts {
		got = append(got, h.Name+" "+h.Role+" "+inv.Origin(h))
	}
	wantHosts := []string{
		"haproxy-www lb digitalocean droplet 11 (tag lb)",
		"monitor-1 app testdata/do.toml:8",
		"mysql-1 db digitalocean droplet 1111 (tag db)",
		"tunnel-1 tunnel digitalocean droplet 1 (tag tunnel)",
		"wordpress-1 app digitalocean droplet 111 (tag app)",
	}
	if diff := cmp.Diff(wantHosts, got); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	h, _ := inv.Host("wordpress-1")
	if h.PrivateIP != addr("198.18.0.21") || h.PublicIP6 != addr("2001:db8::21") || h.PrivateIface != "eth1" || h.User != "root" {
		t.Errorf("wordpress-1 = %+v, want its API addresses and the defaults", h)
	}
	if inv.Tunnel() == nil || inv.Tunnel().Name != "tunnel-1" {
		t.Errorf("tunnel = %v, want the droplet tunnel-1", inv.Tunnel())
	}
	var warnings []string
	for _, w := range inv.Warnings {
		warnings = append(warnings, w.Format(inv.Path))
	}
	wantWarnings := []string{"testdata/do.toml:5: digitalocean: warning: droplet web-9 (id 9) is new: left out until it is active"}
	if diff := cmp.Diff(wantWarnings, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if _, err := f.Resolve(droplets(), nil); err == nil {
		t.Error("a File resolved twice")
	}
}

// A problem of a found host names the droplet in place of a line; those
// of the file keep theirs, and all are reported at once.
func TestResolveProblems(t *testing.T) {
	for _, tc := range []struct {
		name  string
		found func([]Found) []Found
		want  []string
	}{
		{
			name: "a droplet with the name of a host of the file",
			found: func(d []Found) []Found {
				return append(d, droplet("monitor-1", "app", "203.0.113.40", "198.18.0.41", "", 5))
			},
			want: []string{`testdata/do.toml:8: hosts.monitor-1: monitor-1 is also the name of digitalocean droplet 11111 (tag app): rename one of them`},
		},
		{
			name: "two droplets of one name",
			found: func(d []Found) []Found {
				return append(d, droplet("mysql-1", "db", "203.0.113.32", "198.18.0.32", "", 6))
			},
			want: []string{`testdata/do.toml: hosts.mysql-1 (digitalocean droplet 111111 (tag db)): digitalocean droplet 1111 (tag db) has the same name: rename one of them`},
		},
		{
			name: "a droplet without a private address",
			found: func(d []Found) []Found {
				return append(d, droplet("mysql-2", "db", "203.0.113.32", "", "", 6))
			},
			want: []string{`testdata/do.toml: hosts.mysql-2.private_ip (digitalocean droplet 111111 (tag db)): missing: hosts other than the tunnel are reached on their private IP`},
		},
		{
			name: "a droplet with the address of a host of the file",
			found: func(d []Found) []Found {
				return append(d, droplet("mysql-2", "db", "203.0.113.32", "198.18.0.40", "", 6))
			},
			want: []string{`testdata/do.toml: hosts.mysql-2.private_ip (digitalocean droplet 111111 (tag db)): 198.18.0.40 is already used by hosts.monitor-1.private_ip`},
		},
		{
			name:  "no tunnel among the droplets",
			found: func(d []Found) []Found { return d[1:] },
			want:  []string{`testdata/do.toml:3: ssh.tunnel: host "tunnel-1" does not exist: the tunnel must be one of [hosts]`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeFile(t, doFile).Resolve(tc.found(droplets()), nil)
			var ierr *Error
			if !errors.As(err, &ierr) {
				t.Fatalf("error %v is a %T, want *Error", err, err)
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// A wrong [digitalocean] table stops Decode, before any API is asked;
// Parse, which reads no source, refuses an inventory that needs one.
func TestDecodeDigitalOceanBad(t *testing.T) {
	base := `[ssh]
tunnel = "t"
[roles.app]
template = "private"
[sites.a]
tunnel = "t"
`
	for _, tc := range []struct {
		name, table string
		want        []string
	}{
		{"roles missing", "token_env = \"DO_TOKEN\"\n", []string{
			`bad.toml:7: digitalocean.roles: missing: map each droplet tag to the role of its droplets (roles = { app = "app" })`,
			`bad.toml:7: digitalocean.sites: missing: with [sites], map each region the droplets are in to its site (sites = { nyc1 = "nyc" })`,
		}},
		{"every value wrong", `token_env = "DO TOKEN"
endpoint = "ftp://example.com"
roles = { "web app" = "web", db = "" }
sites = { nyc1 = "b" }
`, []string{
			`bad.toml:8: digitalocean.token_env: "DO TOKEN" is not an environment variable's name: name the variable that holds the API token (the token itself is never written here)`,
			`bad.toml:9: digitalocean.endpoint: "ftp://example.com" is not an http or https URL (such as "https://api.digitalocean.com")`,
			`bad.toml:10: digitalocean.roles.db: an empty role: name the role of the droplets tagged "db"`,
			`bad.toml:10: digitalocean.roles.web app: "web app" is not a DigitalOcean tag: letters, digits, ':', '-' and '_', at most 255 characters`,
			`bad.toml:10: digitalocean.roles.web app: role "web" does not exist (roles: app)`,
			`bad.toml:11: digitalocean.sites.nyc1: site "b" does not exist (sites: a)`,
		}},
		{"a token in the URL", "endpoint = \"https://me:secret@api.example\"\nroles = { app = \"app\" }\nsites = { nyc1 = \"a\" }\n", []string{
			`bad.toml:8: digitalocean.endpoint: a URL with a user or password: the token comes from token_env, never from the inventory`,
		}},
		{"a misspelt key", "token = \"DO_TOKEN\"\nroles = { app = \"app\" }\nsites = { nyc1 = \"a\" }\n", []string{
			`bad.toml:8: digitalocean.token: unknown key "token" in [digitalocean]`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := base + "[digitalocean]\n" + tc.table
			_, err := Decode("bad.toml", []byte(src))
			if err == nil {
				t.Fatal("Decode accepted a bad [digitalocean]")
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}

	_, err := Load(doFile)
	want := `testdata/do.toml:5: digitalocean: this inventory takes hosts from DigitalOcean, which this command does not read: give it a snapshot of the resolved inventory (fwpush hosts --inventory-snapshot FILE)`
	if err == nil || err.Error() != want {
		t.Errorf("Load(%s) = %v, want %s", doFile, err, want)
	}
}

// A snapshot is the same inventory, static: parsed again it gives the
// same hosts, roles and sites, the same digest, and no new warning.
func TestSnapshotRoundTrip(t *testing.T) {
	resolved, err := decodeFile(t, doFile).Resolve(droplets(), nil)
	if err != nil {
		t.Fatal(err)
	}
	invs := []*Inventory{resolved}
	for _, file := range []string{"site.toml", "cloud.toml", "custom.toml", "sites.toml", "large.toml", "mixed.toml"} {
		inv, err := Load(filepath.Join("..", "examples", file))
		if err != nil {
			t.Fatal(err)
		}
		invs = append(invs, inv)
	}
	for _, inv := range invs {
		t.Run(inv.Path, func(t *testing.T) {
			dir := t.TempDir()
			from, err := filepath.Abs(filepath.Dir(inv.Path))
			if err != nil {
				t.Fatal(err)
			}
			data, err := Snapshot(inv, SnapshotOptions{Comment: []string{"snapshot of " + inv.Path, "at noon"}, From: from, To: dir})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(data), "# snapshot of "+inv.Path+"\n# at noon\n") {
				t.Errorf("snapshot does not start with its comment:\n%s", data)
			}
			if strings.Contains(string(data), "digitalocean]") {
				t.Errorf("snapshot has a [digitalocean] table:\n%s", data)
			}
			path := filepath.Join(dir, "snapshot.toml")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			again, err := Load(path)
			if err != nil {
				t.Fatalf("snapshot does not load: %v\n%s", err, data)
			}
			opts := cmp.Options{cmpAddrs, cmpopts.IgnoreFields(Inventory{}, "Path", "Warnings", "DigitalOcean"),
				cmp.Transformer("template", func(r Role) Role {
					if !IsBuiltin(r.Template) {
						r.Template = filepath.Base(r.Template)
					}
					return r
				})}
			if diff := cmp.Diff(inv, again, opts); diff != "" {
				t.Errorf("snapshot loads as another inventory (-want +got):\n%s\n%s", diff, data)
			}
			for _, r := range again.Roles {
				if !IsBuiltin(r.Template) {
					if _, err := os.Stat(again.TemplatePath(r.Template)); err != nil {
						t.Errorf("role %s: the snapshot's template path does not lead to the template: %v", r.Name, err)
					}
				}
			}
			if len(again.Warnings) != len(inv.Warnings) {
				t.Errorf("snapshot warns %v, the inventory %v", again.Warnings, inv.Warnings)
			}
			if inv.Digest() != again.Digest() {
				t.Errorf("digest %s, snapshot's %s", inv.Digest(), again.Digest())
			}
		})
	}
}

// The digest changes when the fleet does: a host joins or moves.
func TestDigestFollowsTheFleet(t *testing.T) {
	resolve := func(found []Found) string {
		t.Helper()
		inv, err := decodeFile(t, doFile).Resolve(found, nil)
		if err != nil {
			t.Fatal(err)
		}
		return inv.Digest()
	}
	base := resolve(droplets())
	if !strings.HasPrefix(base, "sha256:") || len(base) != len("sha256:")+64 {
		t.Fatalf("digest %q is not sha256:HEX", base)
	}
	if again := resolve(droplets()); again != base {
		t.Errorf("the same fleet has two digests: %s, %s", base, again)
	}
	joined := resolve(append(droplets(), droplet("wordpress-2", "app", "203.0.113.22", "198.18.0.22", "", 5)))
	moved := droplets()
	moved[2].PrivateIP = addr("198.18.0.29")
	for what, d := range map[string]string{"joined": joined, "moved": resolve(moved)} {
		if d == base {
			t.Errorf("a host %s and the digest stayed %s", what, d)
		}
	}
}
