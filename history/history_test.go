package history

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// A line is what the host writes around the body the controller sends:
// it must parse back to the entry, whatever the names hold.
func TestBodyMakesALine(t *testing.T) {
	e := Run{Who: "zoë@laptop \"x\"", Version: "v1.2.0", Inventory: "sha256:ab12", Joined: []string{"app-3"}, Left: []string{"app-1"}}.
		Entry("db-1", "sha256:cd34", 3, 1)
	body := e.Body()
	for _, c := range body {
		if c < ' ' || c > '~' {
			t.Fatalf("body %q holds byte %#x: the host's shell wants printable ASCII", body, c)
		}
	}
	if body[len(body)-1] != '}' || body[0] != '"' {
		t.Fatalf("body %q: want the members of an object, without its {", body)
	}
	line := `{"time":"2026-12-06T17:05:03Z","outcome":"applied",` + string(body) + "\n"
	got, bad := Parse("other", []byte(line))
	if bad != 0 || len(got) != 1 {
		t.Fatalf("Parse(%q) = %v, %d bad", line, got, bad)
	}
	e.Time, e.Outcome = time.Date(2026, 12, 6, 17, 5, 3, 0, time.UTC), Applied
	if diff := cmp.Diff(e, got[0]); diff != "" {
		t.Errorf("the line read back (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(body), "joined") {
		t.Errorf("body %q lacks joined", body)
	}
	// Without members that joined or left, the line says nothing of them.
	if b := (Run{}).Entry("h", "p", 0, 0).Body(); strings.Contains(string(b), "joined") || strings.Contains(string(b), "left") {
		t.Errorf("body %q names joined or left", b)
	}
}

func TestASCIIAstral(t *testing.T) {
	data, _ := json.Marshal("a😀b")
	got := ascii(data)
	var s string
	if err := json.Unmarshal(got, &s); err != nil || s != "a😀b" {
		t.Errorf("ascii(%s) = %s: reads back %q, %v", data, got, s, err)
	}
}

func TestParseSkipsBadLines(t *testing.T) {
	data := `{"time":"2026-12-06T17:00:00Z","outcome":"applied","host":"a","added":1}
{"time":"2026-12-06T17:01:00Z","outcome":"fail
not json

{"outcome":"applied"}
{"time":"2026-12-06T17:02:00Z","outcome":"failed"}
`
	got, bad := Parse("b", []byte(data))
	if bad != 3 || len(got) != 2 || got[0].Host != "a" || got[1].Host != "b" || got[1].Outcome != Failed {
		t.Errorf("Parse = %+v, %d bad; want 2 entries (a, then b by default) and 3 bad lines", got, bad)
	}
}

func at(min int) time.Time { return time.Date(2026, 12, 6, 17, min, 0, 0, time.UTC) }

func TestMergeAndFilter(t *testing.T) {
	a := []Entry{{Time: at(1), Host: "a"}, {Time: at(5), Host: "a"}, {Time: at(5), Host: "a", Outcome: "second"}}
	b := []Entry{{Time: at(0), Host: "b"}, {Time: at(3), Host: "b"}, {Time: at(9), Host: "b"}}
	m := Merge(a, b)
	var got []string
	for _, e := range m {
		got = append(got, e.Host+e.Time.Format(":04")+e.Outcome)
	}
	want := []string{"b:00", "a:01", "b:03", "a:05", "a:05second", "b:09"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		since time.Time
		limit int
		want  int // entries kept
		first time.Time
	}{
		{time.Time{}, 0, 6, at(0)},
		{at(3), 0, 4, at(3)},
		{at(4), 0, 3, at(5)},
		{time.Time{}, 2, 2, at(5)},
		{at(1), 10, 5, at(1)},
		{at(10), 0, 0, time.Time{}},
	} {
		f := Filter(m, tc.since, tc.limit)
		if len(f) != tc.want || len(f) > 0 && !f[0].Time.Equal(tc.first) {
			t.Errorf("Filter(since %v, limit %d) = %v; want %d from %v", tc.since, tc.limit, f, tc.want, tc.first)
		}
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 17, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"7d":                   now.AddDate(0, 0, -7),
		"2w":                   now.AddDate(0, 0, -14),
		"36h":                  now.Add(-36 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-12-01T09:00:00Z": time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := ParseSince("2026-12-01", now); err != nil || got.Format(time.DateOnly) != "2026-12-01" || got.Hour() != 0 {
		t.Errorf("ParseSince(a date) = %v, %v; want its midnight", got, err)
	}
	for _, in := range []string{"7", "d", "-1h", "yesterday", "7days"} {
		if _, err := ParseSince(in, now); err == nil {
			t.Errorf("ParseSince(%q): no error", in)
		}
	}
}

func TestChanges(t *testing.T) {
	prev := &Members{Digest: "sha256:1", Hosts: []string{"lb-1", "app-1", "app-2", "db-1"}}
	for _, tc := range []struct {
		name         string
		prev         *Members
		cur          Members
		joined, left []string
	}{
		{"no run before", nil, Members{Digest: "sha256:2", Hosts: []string{"a"}}, nil, nil},
		{"same fleet", prev, *prev, nil, nil},
		{"an address changed", prev, Members{Digest: "sha256:2", Hosts: prev.Hosts}, nil, nil},
		{"one joined, one left", prev, Members{Digest: "sha256:3", Hosts: []string{"lb-1", "app-3", "app-2", "db-1", "app-0"}}, []string{"app-0", "app-3"}, []string{"app-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, l := Changes(tc.prev, tc.cur)
			if diff := cmp.Diff([2][]string{tc.joined, tc.left}, [2][]string{j, l}); diff != "" {
				t.Errorf("joined, left (-want +got):\n%s", diff)
			}
		})
	}
	m := Members{Digest: "sha256:1", Hosts: []string{"a", "b"}}
	got, err := ParseMembers(m.Marshal())
	if err != nil || !cmp.Equal(*got, m) {
		t.Errorf("ParseMembers(Marshal) = %v, %v", got, err)
	}
	if got, err := ParseMembers(nil); got != nil || err != nil {
		t.Errorf("ParseMembers(nothing) = %v, %v", got, err)
	}
	if _, err := ParseMembers([]byte("{")); err == nil {
		t.Error("ParseMembers(garbage): no error")
	}
}

func TestShort(t *testing.T) {
	if got := Short("sha256:0123456789abcdef"); got != "0123456789ab" {
		t.Errorf("Short = %q", got)
	}
	if got := Short("abc"); got != "abc" {
		t.Errorf("Short = %q", got)
	}
}
