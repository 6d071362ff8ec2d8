package main

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/digitalocean/fakeapi"
	"github.com/fwpush/fwpush/inventory"
)

const (
	exampleDO    = "../../examples/do.toml"
	exampleCloud = "../../examples/cloud.toml"
	doToken      = "dop_v1_fwpush-test"
	// The line of examples/do.toml that the tests and the demo point at
	// their fake API.
	defaultEndpointLine = `# endpoint = "https://api.digitalocean.com"`
)

// doInventory writes examples/do.toml with its endpoint at url into dir.
func doInventory(t testing.TB, dir, url string) string {
	t.Helper()
	data, err := os.ReadFile(exampleDO)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), defaultEndpointLine) {
		t.Fatalf("%s has no line %q to point at the fake API", exampleDO, defaultEndpointLine)
	}
	data = []byte(strings.Replace(string(data), defaultEndpointLine, `endpoint = "`+url+`"`, 1))
	path := filepath.Join(dir, "do.toml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cloudDroplets are the hosts of examples/cloud.toml as droplets.
func cloudDroplets(t testing.TB) []fakeapi.Droplet {
	t.Helper()
	inv, err := inventory.Load(exampleCloud)
	if err != nil {
		t.Fatal(err)
	}
	return fakeapi.FromInventory(inv, 1001)
}

// doFleet serves the droplets of examples/cloud.toml, tagged by role,
// three to a page, from a fake API that wants doToken, and returns
// examples/do.toml pointed at it.
func doFleet(t *testing.T) (path string, api *fakeapi.Server) {
	t.Helper()
	api = fakeapi.New(cloudDroplets(t)...)
	api.Token = doToken
	api.PerPage = 3
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Setenv("DIGITALOCEAN_TOKEN", doToken)
	return doInventory(t, t.TempDir(), srv.URL), api
}

// Every command sees the droplets as hosts: validate counts them, hosts
// lists each with the droplet it is, render uses their API addresses, and
// a droplet added to the API is in the db servers' policy next time.
func TestDigitalOceanFleet(t *testing.T) {
	path, api := doFleet(t)
	code, out, errs := fwpush(t, "validate", path)
	if code != exitOK || !strings.Contains(out, "valid: 6 hosts, 4 roles") || errs != "" {
		t.Fatalf("validate: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	code, out, errs = fwpush(t, "hosts", path)
	if code != exitOK || errs != "" {
		t.Fatalf("hosts: exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		`(?m)^ *host +role +public_ip +public_ip6 +private_ip +source *$`,
		`(?m)^ *haproxy-www +lb +203\.0\.113\.11 +2001:db8::11 +198\.18\.0\.11 +digitalocean droplet 1001 \(tag lb\) *$`,
		`(?m)^ *wordpress-2 +app +- +- +198\.18\.0\.22 +digitalocean droplet 1006 \(tag app\) *$`,
		`(?m)^6 hosts; fleet digest sha256:[0-9a-f]{64}$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("hosts prints no line matching %s:\n%s", want, out)
		}
	}

	code, out, _ = fwpush(t, "hosts", "--json", path)
	if code != exitOK {
		t.Fatalf("hosts --json: exit %d", code)
	}
	validateJSON(t, "hosts", []byte(out))
	var doc jsonHosts
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 6 || doc.Hosts[1].Host != "mysql-1" || doc.Hosts[1].PrivateIP != "198.18.0.31" || doc.Hosts[1].Source != "digitalocean droplet 1002 (tag db)" {
		t.Errorf("hosts --json: %+v", doc.Hosts)
	}

	code, out, errs = fwpush(t, "render", "--host", "wordpress-1", path)
	if code != exitOK || !strings.Contains(out, "-A INPUT -i eth1 -p tcp -m set --match-set fwp-lb-4 src -m tcp --dport 80 -j ACCEPT") || !strings.Contains(out, "add fwp-lb-4 198.18.0.11\n") {
		t.Fatalf("render --host wordpress-1: exit %d, stderr %q; want the lb droplet's address in:\n%s", code, errs, out)
	}

	newApp := "add fwp-app-4 198.18.0.23\n" // a member of mysql-1's set of app servers
	if _, out, _ := fwpush(t, "render", "--host", "mysql-1", path); strings.Contains(out, newApp) {
		t.Fatalf("mysql-1 accepts wordpress-3 before it exists:\n%s", out)
	}
	api.Add(fakeapi.Droplet{ID: 2001, Name: "wordpress-3", Tags: []string{"app"}, PrivateIP: "198.18.0.23", PublicIP: "203.0.113.23"})
	code, out, errs = fwpush(t, "render", "--host", "mysql-1", path)
	if code != exitOK || !strings.Contains(out, newApp) {
		t.Errorf("render --host mysql-1 after wordpress-3 was created: exit %d, stderr %q; want %q in:\n%s", code, errs, newApp, out)
	}
}

// A snapshot is the fleet as it was: offline commands given it render the
// same policies when the API has moved on, or is gone, and it has the
// same digest.
func TestInventorySnapshot(t *testing.T) {
	path, api := doFleet(t)
	snap := filepath.Join(t.TempDir(), "fleet.toml")
	code, hostsOut, errs := fwpush(t, "hosts", "--inventory-snapshot", snap, path)
	if code != exitOK {
		t.Fatalf("hosts --inventory-snapshot: exit %d, stderr %q", code, errs)
	}
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"# fwpush inventory snapshot of " + path + ", resolved ",
		"# fleet digest sha256:",
		`source = "digitalocean droplet 1004 (tag tunnel)"`,
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("snapshot has no %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "[digitalocean]") || strings.Contains(string(data), doToken) {
		t.Errorf("snapshot has [digitalocean] or the token:\n%s", data)
	}
	_, before, _ := fwpush(t, "render", path)
	if code, _, errs := fwpush(t, "validate", "--inventory-snapshot", snap+".2", path); code != exitOK {
		t.Errorf("validate --inventory-snapshot: exit %d, stderr %q", code, errs)
	} else if again, err := os.ReadFile(snap + ".2"); err != nil || !sameAfterComment(string(data), string(again)) {
		t.Errorf("validate's snapshot differs from hosts': %v\n%s", err, again)
	}
	if code, _, errs := fwpush(t, "hosts", "--inventory-snapshot", path, path); code != exitInvalid || !strings.Contains(errs, "is the inventory itself") {
		t.Errorf("hosts --inventory-snapshot over the inventory: exit %d, stderr %q", code, errs)
	}

	api.Remove("mysql-2")
	t.Setenv("DIGITALOCEAN_TOKEN", "") // the snapshot needs none
	code, after, errs := fwpush(t, "render", snap)
	if code != exitOK || after != before {
		t.Errorf("render of the snapshot: exit %d, stderr %q; it differs from the fleet's", code, errs)
	}
	_, snapHosts, _ := fwpush(t, "hosts", snap)
	digest := regexp.MustCompile(`fleet digest sha256:[0-9a-f]+`)
	if d, s := digest.FindString(hostsOut), digest.FindString(snapHosts); d == "" || d != s {
		t.Errorf("digests: fleet %q, snapshot %q", d, s)
	}
}

// A failing API is one line and exit 1 for every command, before any host
// is contacted; an unset token, a droplet that cannot be a host, and a
// name both the file and a droplet use are invalid input, each named.
func TestDigitalOceanErrors(t *testing.T) {
	path, api := doFleet(t)
	t.Setenv("DIGITALOCEAN_TOKEN", "dop_v1_revoked")
	want := "fwpush: " + path + ": digitalocean: droplets tagged app: 401 Unauthorized: Unable to authenticate you (the token in $DIGITALOCEAN_TOKEN); no host contacted\n"
	for _, args := range [][]string{{"validate"}, {"render"}, {"graph"}, {"hosts"}, {"run", "--dry-run"}, {"check"}} {
		code, out, errs := fwpush(t, append(args, path)...)
		if code != exitFailed || out != "" || errs != want {
			t.Errorf("%s with a revoked token: exit %d, stdout %q, stderr %q; want exit %d and %q", args[0], code, out, errs, exitFailed, want)
		}
	}

	t.Setenv("DIGITALOCEAN_TOKEN", "")
	code, _, errs := fwpush(t, "validate", path)
	if want := path + ":15: digitalocean.token_env: $DIGITALOCEAN_TOKEN is not set: put a DigitalOcean API token in it (read access is enough)\n"; code != exitInvalid || errs != want {
		t.Errorf("validate without a token: exit %d, stderr %q; want exit %d and %q", code, errs, exitInvalid, want)
	}

	t.Setenv("DIGITALOCEAN_TOKEN", doToken)
	api.Add(fakeapi.Droplet{ID: 2002, Name: "mysql-3", Tags: []string{"app", "db"}, PrivateIP: "198.18.0.33"})
	code, _, errs = fwpush(t, "validate", path)
	if want := path + ":14: digitalocean: droplet mysql-3 (id 2002) has the tags app and db, which name different roles: give it the tag of one\n"; code != exitInvalid || errs != want {
		t.Errorf("validate with a droplet of two roles: exit %d, stderr %q; want exit %d and %q", code, errs, exitInvalid, want)
	}
	api.Remove("mysql-3")

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	static := string(data) + "\n[hosts.mysql-2]\nrole = \"db\"\nprivate_ip = \"198.18.0.42\"\n"
	if err := os.WriteFile(path, []byte(static), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(string(data), "\n") + 2
	code, _, errs = fwpush(t, "validate", path)
	if want := path + ":" + strconv.Itoa(line) + ": hosts.mysql-2: mysql-2 is also the name of digitalocean droplet 1003 (tag db): rename one of them\n"; code != exitInvalid || errs != want {
		t.Errorf("validate with a host named as a droplet: exit %d, stderr %q; want exit %d and %q", code, errs, exitInvalid, want)
	}
}

// sameAfterComment tells whether two snapshots are the same but for their
// comment, which holds the time.
func sameAfterComment(a, b string) bool {
	body := func(s string) string {
		_, rest, _ := strings.Cut(s, "\n\n")
		return rest
	}
	return body(a) != "" && body(a) == body(b)
}
