package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// A droplet created with the tag app joins the fleet on the next run: it
// gets its policy, and the db servers, which refused it, accept it. The
// API is fwpush lab fake-do inside the lab, serving a static inventory as
// droplets, as make demo does; the lab has the third app server from the
// start, not yet a droplet.
func TestDigitalOceanDropletJoinsInLab(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	dir := t.TempDir()
	cloud, err := os.ReadFile(exampleCloud)
	if err != nil {
		t.Fatal(err)
	}
	wordpress3 := "\n[hosts.wordpress-3]\nrole = \"app\"\nprivate_ip = \"198.18.0.23\"\n"
	write := func(name, data string) string {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	l := labtest.Start(t, write("lab.toml", string(cloud)+wordpress3))
	droplets := write("droplets.toml", string(cloud))

	api := l.Command(context.Background(), os.Args[0], "lab", "fake-do", "--token", "lab-token", droplets)
	api.Env = append(api.Env, "FWPUSH_TEST_CLI=1")
	var apiOut strings.Builder
	api.Stdout, api.Stderr = &apiOut, &apiOut
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = api.Process.Kill()
		_ = api.Wait()
	})
	waitListening(t, l, defaultFakeDOListen)

	do := doInventory(t, dir, "http://"+defaultFakeDOListen)
	env := []string{"DIGITALOCEAN_TOKEN=lab-token"}
	if code, _, _ := cliEnv(t, l, env, "run", "--no-verify", do); code != exitOK {
		t.Fatalf("first run: exit %d; fake API said: %s", code, apiOut.String())
	}
	if r := labtest.Probe(t, l, "wordpress-3", "198.18.0.31", 3306); r != lab.Filtered {
		t.Fatalf("wordpress-3 -> mysql-1:3306 %s before it is a droplet, want filtered", r)
	}
	if r := labtest.Probe(t, l, "wordpress-1", "198.18.0.31", 3306); r != lab.Reachable {
		t.Fatalf("wordpress-1 -> mysql-1:3306 %s, want reachable", r)
	}

	// The droplet is created.
	write("droplets.toml", string(cloud)+wordpress3)
	code, out, _ := cliEnv(t, l, env, "run", "--no-verify", do)
	if code != exitOK {
		t.Fatalf("run after wordpress-3 was created: exit %d", code)
	}
	for _, want := range []string{"wordpress-3", "mysql-1", "mysql-2"} {
		if !regexp.MustCompile(`(?m)^\s*` + want + ` +(app|db) +applied `).MatchString(out) {
			t.Errorf("run after wordpress-3 was created: %s not applied:\n%s", want, out)
		}
	}
	for _, db := range []string{"198.18.0.31", "198.18.0.32"} {
		if r := labtest.Probe(t, l, "wordpress-3", db, 3306); r != lab.Reachable {
			t.Errorf("wordpress-3 -> %s:3306 %s after the run, want reachable", db, r)
		}
	}
	if r := labtest.Probe(t, l, "wordpress-3", "198.18.0.31", 22); r != lab.Filtered {
		t.Errorf("wordpress-3 -> mysql-1:22 %s: it has its policy's limits, want filtered", r)
	}
}

// waitListening waits until something listens at address in the lab's
// controller.
func waitListening(t *testing.T, l *lab.Lab, address string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		c, err := l.DialContext(ctx, lab.Controller, "tcp", address)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens at %s in the controller: %v", address, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
