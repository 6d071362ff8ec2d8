package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fwpush/fwpush/check"
	"github.com/fwpush/fwpush/inventory"
	"github.com/fwpush/fwpush/roles"
	"github.com/fwpush/fwpush/runner"
)

// TestExplainCommand: the first line is the verdict, the rest the rule
// and the inventory entry; the exit status says allowed (0), denied (1)
// or a question that names nothing (3).
func TestExplainCommand(t *testing.T) {
	site := "../../examples/site.toml"
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{site, "wordpress-1", "mysql-1", "tcp/3306"}, exitOK, []string{
			"allowed\n",
			"wordpress-1 -> mysql-1 198.18.0.31 tcp/3306: allowed\n",
			"  wordpress-1 IPv4 OUTPUT line 5: :OUTPUT ACCEPT [0:0] (the chain's policy: no rule decides)\n    " + site + ":56: roles.app.template, private.tmpl:",
			"  mysql-1 IPv4 INPUT line 13: -A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT\n    " + site + ":67: roles.db.allow[0] (app)\n",
		}},
		{[]string{site, "app", "mysql-2", "tcp/22"}, exitFailed, []string{
			"denied\n",
			"wordpress-2 -> mysql-2 198.18.0.32 tcp/22: denied\n",
			"  mysql-2 IPv4 INPUT line 3: :INPUT DROP [0:0] (the chain's policy: no rule decides)\n    " + site + ":66: roles.db.template, private.tmpl:5\n",
		}},
		{[]string{site, "internet", "haproxy-www", "tcp/443"}, exitOK, []string{
			"internet -> haproxy-www 2001:db8::11 tcp/443: allowed\n",
			site + ":53: roles.lb.public_tcp\n",
		}},
		{[]string{site, "wordpress-1", "mysql-1", "tcp/3306"}, exitOK, []string{
			"-A INPUT -i eth1 -p tcp -m set --match-set fwp-app-4 src -m tcp --dport 3306 -j ACCEPT\n    " + site + ":67: roles.db.allow[0] (app)\n",
		}},
		{[]string{site, "nobody", "mysql-1", "tcp/22"}, exitInvalid, nil},
		{[]string{site, "app", "db", "3306"}, exitInvalid, nil},
		{[]string{site, "app", "db"}, exitInvalid, nil},
	} {
		code, out, errOut := fwpush(t, append([]string{"explain"}, tc.args...)...)
		if code != tc.code {
			t.Errorf("explain %v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("explain %v: output lacks %q:\n%s", tc.args, w, out)
			}
		}
		if tc.code == exitInvalid && (out != "" || errOut == "") {
			t.Errorf("explain %v: stdout %q, stderr %q; want the error on stderr alone", tc.args, out, errOut)
		}
	}
}

// TestCheckMismatchExplained: check's failure lines say which rule of the
// compiled policies decides what the probe had to find.
func TestCheckMismatchExplained(t *testing.T) {
	inv, err := inventory.Load("../../examples/site.toml")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := roles.Compile(inv, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := roles.Expect(inv)
	obs := make([]runner.Observation, len(m.Expectations))
	for i, e := range m.Expectations {
		obs[i] = runner.Observation{Reach: e.Want, Detail: map[roles.Reach]string{roles.Reachable: "refused", roles.Filtered: "timed out"}[e.Want]}
		switch {
		case e.From == "wordpress-1" && e.To == "mysql-1" && e.Port == 22: // a rule added by hand
			obs[i] = runner.Observation{Reach: roles.Reachable, Detail: "connected"}
		case e.From == "haproxy-www" && e.To == "wordpress-2" && e.Port == 80: // a rule removed by hand
			obs[i] = runner.Observation{Reach: roles.Filtered, Detail: "timed out"}
		}
	}
	suite := check.Suite{Matrix: m}
	rep := newCheckReport(inv, m, obs, 0)
	rep.Explain(suite, decidedBy(plan))
	var out bytes.Buffer
	rep.writeText(&out, style{}, false)
	for _, want := range []string{
		"expected filtered, observed reachable (connected); roles.db.allow opens nothing on tcp 22 to app; SSH is open to the tunnel only\n" +
			"      decided by mysql-1 IPv4 INPUT line 3: :INPUT DROP [0:0] (the chain's policy: no rule decides) [../../examples/site.toml:66: roles.db.template, private.tmpl:5]\n",
		"expected reachable, observed filtered (timed out); roles.app.allow: from lb, tcp 80\n" +
			"      decided by wordpress-2 IPv4 INPUT line 13: -A INPUT -i eth1 -p tcp -m set --match-set fwp-lb-4 src -m tcp --dport 80 -j ACCEPT [../../examples/site.toml:58: roles.app.allow[0] (lb)]\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check's text lacks %q:\n%s", want, out.String())
		}
	}
	n := 0
	for _, p := range rep.Probes {
		if p.DecidedBy != "" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d probes explained, want the 2 mismatches", n)
	}
	var js bytes.Buffer
	if err := writeJSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	validateJSON(t, "check", js.Bytes())
	if !strings.Contains(js.String(), `"decided_by": "mysql-1 IPv4 INPUT line 3: :INPUT DROP [0:0]`) {
		t.Errorf("check --json lacks decided_by:\n%s", js.String())
	}
}
