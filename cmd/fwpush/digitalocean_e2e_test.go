package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/history"
	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// A droplet created with the tag app joins the fleet on the next run: it
// gets its policy, and the db servers, which refused it, accept it; the
// run says it joined, and so does the history of each host it changed. The
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

	bin, binEnv := cliPath(t)
	api := l.Command(context.Background(), bin, "lab", "fake-do", "--token", "lab-token", droplets)
	api.Env = append(api.Env, binEnv...)
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
	// The db servers' sets gain its address; their rules stay as they
	// are (one rule per flow, whatever the fleet).
	for _, db := range []string{"mysql-1", "mysql-2"} {
		if !regexp.MustCompile(`(?m)^` + db + ` +applied \(members \+1 -0\)`).MatchString(out) {
			t.Errorf("run after wordpress-3 was created: %s's change is not one member added to its sets, and no rule:\n%s", db, out)
		}
	}
	if !strings.Contains(out, "\nfleet since the last run: joined: wordpress-3\n") {
		t.Errorf("run after wordpress-3 was created does not say it joined:\n%s", out)
	}
	code, out, _ = cliEnv(t, l, env, "history", "--json", do)
	if code != exitOK {
		t.Fatalf("history: exit %d", code)
	}
	joined := map[string]int{}
	for line := range strings.Lines(out) {
		var e history.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("history --json: %v: %s", err, line)
		}
		if slices.Equal(e.Joined, []string{"wordpress-3"}) {
			joined[e.Host]++
		} else if len(e.Joined)+len(e.Left) > 0 {
			t.Errorf("history: %s says %v joined and %v left", e.Host, e.Joined, e.Left)
		}
	}
	// The hosts of the second run's change: the new droplet, the db
	// servers; the first run had nothing to compare with.
	for _, h := range []string{"wordpress-3", "mysql-1", "mysql-2"} {
		if joined[h] != 1 {
			t.Errorf("history: %d lines of %s say wordpress-3 joined, want 1:\n%s", joined[h], h, out)
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

	// A run with the same fleet says nothing of it.
	if code, out, _ := cliEnv(t, l, env, "run", "--no-verify", do); code != exitOK || strings.Contains(out, "fleet since") {
		t.Errorf("a run with the same fleet: exit %d:\n%s", code, out)
	}
	// The droplet is destroyed: it left, and the db servers refuse it again.
	write("droplets.toml", string(cloud))
	if code, out, _ := cliEnv(t, l, env, "run", "--no-verify", do); code != exitOK || !strings.Contains(out, "\nfleet since the last run: left: wordpress-3\n") {
		t.Errorf("run after wordpress-3 was destroyed: exit %d, want it said to have left:\n%s", code, out)
	}
	if r := labtest.Probe(t, l, "wordpress-3", "198.18.0.31", 3306); r != lab.Filtered {
		t.Errorf("wordpress-3 -> mysql-1:3306 %s after it left, want filtered", r)
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
