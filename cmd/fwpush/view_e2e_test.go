package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/lab/labtest"
)

// changedSite writes examples/site.toml with old replaced by new, and
// returns its path.
func changedSite(t *testing.T, old, new string) string {
	t.Helper()
	src, err := os.ReadFile("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(src), old, new, 1)
	if body == string(src) {
		t.Fatalf("examples/site.toml has no %q", old)
	}
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestViewInLab is the operator's view of issue 15 on real sshd and real
// iptables: the diff of every change in the terminal, in cron's mail and
// in --json; the --json documents of run and check as documented; a tunnel
// down as one leading error line; the check after a run leaving out the
// hosts it did not finish.
func TestViewInLab(t *testing.T) {
	t.Parallel()
	site := example(t, "site.toml")
	l := labtest.Start(t, site)

	// The first run, in JSON: every host's diff, and the check after it.
	code, out, errs := cli(t, l, "run", "--json", site)
	validateJSON(t, "run", []byte(out))
	var first runReport
	if err := jsonUnmarshal(out, &first); err != nil || code != exitOK || errs != "" {
		t.Fatalf("first run --json: exit %d, %v, stderr %q", code, err, errs)
	}
	if first.Counts["applied"] != len(siteHosts) || first.Check == nil || first.Check.Count.Probes != 71 || first.Check.ExitCode != exitOK {
		t.Errorf("first run --json: counts %v, check %+v", first.Counts, first.Check)
	}
	for _, h := range first.Hosts {
		if !strings.Contains(h.Diff, "+-A INPUT -i lo -j ACCEPT") {
			t.Errorf("run --json: %s's diff lacks its new rules:\n%s", h.Host, h.Diff)
		}
	}
	// check --json's document after a run, every host probed, is
	// TestCheckInLab's; with the tunnel down, below.
	if code, out, _ := cli(t, l, "run", "--diff", site); code != exitOK || strings.Contains(out, "\n--- ") || strings.Contains(out, "\x1b[") {
		t.Errorf("run --diff with nothing to change: exit %d, want no diff, and no escape sequence off a terminal", code)
	}

	const rule = "+-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m multiport --dports 3306,33060 -j ACCEPT"
	t.Run("run --diff prints the changed rule", func(t *testing.T) {
		changed := changedSite(t, `{ from = "app", tcp = [3306] }`, `{ from = "app", tcp = [3306, 33060] }`)
		code, out, _ := cli(t, l, "run", "--diff", "--no-verify", changed)
		if code != exitOK || !strings.Contains(out, "--- mysql-1 (db): applied\n") || !strings.Contains(out, rule+"\n") || strings.Contains(out, "wordpress-1 (app): applied") {
			t.Errorf("run --diff: exit %d, want mysql-1's diff with %q and no other role's", code, rule)
		}
		// Back to the example, from cron: the mail shows the rule going.
		code, out, _ = cli(t, l, "run", "--quiet", "--no-verify", site)
		if code != exitOK || !strings.Contains(out, "--- mysql-1 (db): applied\n") || !strings.Contains(out, "-"+rule[1:]+"\n") || !strings.Contains(out, "2 applied") {
			t.Errorf("run --quiet after an inventory change: exit %d, want the diff of the rule removed", code)
		}
		if code, out, _ := cli(t, l, "run", "--quiet", site); code != exitOK || out != "" {
			t.Errorf("run --quiet with nothing to change: exit %d, stdout %q", code, out)
		}
	})

	t.Run("the tunnel down is one leading error line", func(t *testing.T) {
		labtest.Shell(t, l, "tunnel-1", "iptables", "-I", "INPUT", "1", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset")
		t.Cleanup(func() {
			_, _ = l.Shell(context.Background(), "tunnel-1", "iptables", "-D", "INPUT", "-p", "tcp", "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset")
		})
		var both bytes.Buffer
		cmd := cliCommand(t, l, nil, "run", site)
		cmd.Stdout, cmd.Stderr = &both, &both
		err := cmd.Run()
		t.Logf("fwpush run with the tunnel down: %v\n%s", err, both.String())
		lines := strings.Split(both.String(), "\n")
		if cmd.ProcessState.ExitCode() != exitFailed || !strings.HasPrefix(lines[0], "fwpush: no host tried: host tunnel-1: connect to 203.0.113.10:22: ") ||
			!strings.Contains(lines[0], "connection refused") || strings.Count(both.String(), "connection refused") != 1 {
			t.Errorf("want exit 1 and the cause alone on the first line, once")
		}
		if !strings.Contains(both.String(), ": 6 not tried\n") || strings.Contains(both.String(), "error:") || strings.Contains(both.String(), "check:") {
			t.Errorf("want every host not tried, no per-host error, no check")
		}
		code, out, errs := cli(t, l, "check", "--json", site)
		validateJSON(t, "check", []byte(out))
		if code != exitFailed || strings.Count(errs, "\n") != 1 || !strings.Contains(out, `"status": "not_tried"`) || !strings.Contains(out, `"error": "host tunnel-1: connect to`) {
			t.Errorf("check --json with the tunnel down: exit %d, want one line on stderr, the hosts not tried and the cause", code)
		}
	})

	t.Run("the check after a run leaves out the hosts it did not finish", func(t *testing.T) {
		labtest.Shell(t, l, "wordpress-2", "ip", "link", "set", "eth1", "down")
		t.Cleanup(func() { _, _ = l.Shell(context.Background(), "wordpress-2", "ip", "link", "set", "eth1", "up") })
		// A change on every db host, so that the run checks them.
		changed := changedSite(t, `{ from = "app", tcp = [3306] }`, `{ from = "app", tcp = [3306, 33060] }`)
		code, out, _ := cli(t, l, "run", "--json", changed)
		validateJSON(t, "run", []byte(out))
		var rep runReport
		if err := jsonUnmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		if code != exitFailed || rep.Counts["unreachable"] != 1 || rep.Check == nil || rep.Check.ExitCode != exitOK || rep.Check.Count.LeftOut == 0 ||
			len(rep.Check.LeftOut) != 1 || rep.Check.LeftOut[0].Host != "wordpress-2" {
			t.Fatalf("run: exit %d, counts %v, check %+v; want wordpress-2 unreachable and left out of an otherwise good check", code, rep.Counts, rep.Check)
		}
		for _, p := range rep.Check.Probes {
			if p.From == "wordpress-2" || p.To == "wordpress-2" {
				t.Errorf("the check probed %s -> %s", p.From, p.To)
			}
		}
		code, out, _ = cli(t, l, "run", site)
		if code != exitFailed || !regexp.MustCompile(`check: left out \d+ probes from or to wordpress-2 \(unreachable in the run\)\n`).MatchString(out) ||
			!strings.Contains(out, "all as expected") {
			t.Errorf("run: exit %d, want the check's line about wordpress-2, and all else as expected", code)
		}
	})
}

// jsonUnmarshal decodes a --json document.
func jsonUnmarshal(doc string, v any) error { return json.Unmarshal([]byte(doc), v) }
