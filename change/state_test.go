package change

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/live"
	"github.com/fwpush/fwpush/roles"
)

// TestState: what a hand change between a plan and its apply makes of the
// state a plan records (another state), and what changes by itself on a
// host nobody touched (the same state). The base is app-1, which
// preserves Docker's and fail2ban's chains, with its policy applied and
// persisted beside them.
func TestState(t *testing.T) {
	inv := loadFleet(t)
	pol := policyOf(t, inv, "app-1")
	base := func() live.Facts {
		f := debian(t, pol.Host, "app-1.docker")
		persisted(pol)(&f)
		return f
	}
	want := State(inv, pol, base())
	if !strings.HasPrefix(want, "sha256:") || len(want) != len("sha256:")+64 {
		t.Fatalf("State = %q, want sha256:<64 hex digits>", want)
	}
	if c := Decide(inv, pol, base(), Options{}); c.State != want {
		t.Errorf("Decide's state %q, want State's %q", c.State, want)
	}
	addRule := func(doc, rule string) string { return strings.Replace(doc, "COMMIT\n", rule+"\nCOMMIT\n", 1) }
	for _, tc := range []struct {
		name string
		set  func(f *live.Facts)
		same bool
	}{
		{name: "read again", set: func(*live.Facts) {}, same: true},
		{name: "other packet counters and save comments", same: true, set: func(f *live.Facts) {
			f.V4 = strings.ReplaceAll(strings.ReplaceAll(f.V4, "[0:0]", "[1234:98765]"), "# Generated", "# Saved later, generated")
		}},
		{name: "a ban fail2ban adds", same: true, set: func(f *live.Facts) { f.V4 = read(t, "live/app-1.docker-ban.v4") }},
		{name: "a rule inside a Docker chain", same: true, set: func(f *live.Facts) {
			f.V4 = addRule(f.V4, "-A DOCKER -d 198.18.17.3/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 443 -j ACCEPT")
		}},
		{name: "another run at work, its guard and the lock", same: true, set: func(f *live.Facts) {
			now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			f.Guards = []live.Guard{{Token: "t", Status: "ok", Started: now, FireAt: now.Add(time.Minute), Now: now}}
			f.Lock = &live.Lock{Token: "t", Expires: now.Add(time.Hour), Who: "root@ci pid 7", Now: now}
		}},
		{name: "another SSH session", same: true, set: func(f *live.Facts) {
			f.Conn = live.Conn{Client: netip.MustParseAddr("198.18.0.10"), Server: netip.MustParseAddr("198.18.0.21"), Port: 22}
		}},
		{name: "an interface and an address more, a tool less", same: true, set: func(f *live.Facts) {
			f.Links = append(f.Links, "veth1234")
			f.Addrs = map[netip.Addr]string{netip.MustParseAddr("198.18.0.21"): "eth1"}
			f.Tools = f.Tools[1:]
		}},

		{name: "a rule added by hand", set: func(f *live.Facts) {
			f.V4 = addRule(f.V4, "-A INPUT -s 198.51.100.7/32 -j ACCEPT")
		}},
		{name: "a rule removed by hand", set: func(f *live.Facts) { f.V4 = read(t, "live/app-1.drift.v4") }},
		{name: "an IPv6 rule added by hand", set: func(f *live.Facts) {
			f.V6 = addRule(f.V6, "-A INPUT -s 2001:db8::7/128 -j ACCEPT")
		}},
		{name: "a chain policy changed", set: func(f *live.Facts) { f.V4 = strings.Replace(f.V4, ":INPUT DROP", ":INPUT ACCEPT", 1) }},
		{name: "a jump into a Docker chain moved", set: func(f *live.Facts) {
			f.V4 = strings.Replace(f.V4, "-A FORWARD -j DOCKER-USER\n", "", 1)
			f.V4 = addRule(f.V4, "-A FORWARD -j DOCKER-USER")
		}},
		{name: "an unknown chain", set: func(f *live.Facts) {
			f.V4 = strings.Replace(f.V4, ":OUTPUT ", ":backdoor - [0:0]\n:OUTPUT ", 1)
		}},
		{name: "rules.v4 removed", set: func(f *live.Facts) { f.Persisted4 = "" }},
		{name: "rules.v6 edited", set: func(f *live.Facts) { f.Persisted6 += "# edited\n" }},
		{name: "another policy recorded as applied", set: func(f *live.Facts) { f.Applied = "sha256:older" }},
		{name: "iptables-persistent removed", set: func(f *live.Facts) { f.Persistent = false }},
		{name: "iptables-save failing", set: func(f *live.Facts) { f.SaveFailed, f.SaveError = true, "boom" }},
		{name: "the other backend holding a rule", set: func(f *live.Facts) {
			f.OtherBackend, f.Other4 = "legacy", legacyRules
		}},
		{name: "ufw enabled", set: func(f *live.Facts) {
			f.Managers = []live.Manager{{Name: "ufw", How: "ENABLED=yes in /etc/ufw/ufw.conf"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.set(&f)
			got := State(inv, pol, f)
			if (got == want) != tc.same {
				t.Errorf("state %s, base %s: same = %v, want %v", got, want, got == want, tc.same)
			}
		})
	}
}

// TestStateFollowsPreserve: what a preserve pattern keeps is left out of
// the state on the hosts of its role only.
func TestStateFollowsPreserve(t *testing.T) {
	inv := loadFleet(t)
	app, db := policyOf(t, inv, "app-1"), policyOf(t, inv, "db-1")
	f := debian(t, app.Host, "app-1.docker")
	f2 := f
	// db preserves nothing: Docker's chains are its own (unknown) rules
	// there, so that a ban is a change of state.
	ban := read(t, "live/app-1.docker-ban.v4")
	f2.V4 = ban
	if State(inv, &roles.Policy{Host: db.Host, V4: app.V4, V6: app.V6}, f) == State(inv, &roles.Policy{Host: db.Host, V4: app.V4, V6: app.V6}, f2) {
		t.Error("on a host that preserves nothing, a ban in a Docker chain leaves the state as it was")
	}
	if State(inv, app, f) != State(inv, app, f2) {
		t.Error("on a host that preserves fail2ban's chains, a ban changes the state")
	}
}
