package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// unitFile is a systemd unit file: its sections' keys and their values,
// in order.
type unitFile map[string]map[string][]string

// parseUnit reads a unit file as systemd's INI dialect: [Section] lines,
// Key=Value lines, # and ; comments.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// has fails the test unless section holds key with exactly want.
func (u unitFile) has(t *testing.T, section, key string, want ...string) {
	t.Helper()
	if diff := cmp.Diff(want, u[section][key]); diff != "" {
		t.Errorf("[%s] %s (-want +got):\n%s", section, key, diff)
	}
}

func TestScheduleSystemd(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	site, err := filepath.Abs(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := fwpush(t, "schedule", "--install", "--install-dir", dir, "--every", "15m", "--user", "root",
		"--report", "/var/lib/fwpush/site 1.json", exampleSite, "--", "--identity", `/root/.ssh/fw "push" 100%`)
	if code != exitOK {
		t.Fatalf("schedule --install: exit %d: %s", code, errs)
	}
	for _, want := range []string{"wrote " + filepath.Join(dir, "fwpush-site.service") + "\n", "wrote " + filepath.Join(dir, "fwpush-site.timer") + "\n", "systemctl enable --now fwpush-site.timer\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	svc := parseUnit(t, filepath.Join(dir, "fwpush-site.service"))
	svc.has(t, "Service", "Type", "oneshot")
	svc.has(t, "Service", "User", "root")
	svc.has(t, "Service", "ExecStart", exe+" run --quiet --json --metrics-file /var/lib/prometheus/node-exporter/fwpush-site.prom"+
		` --identity "/root/.ssh/fw \"push\" 100%%" `+site)
	svc.has(t, "Service", "StandardOutput", "truncate:/var/lib/fwpush/site 1.json")
	svc.has(t, "Unit", "After", "network-online.target")
	timer := parseUnit(t, filepath.Join(dir, "fwpush-site.timer"))
	timer.has(t, "Timer", "OnCalendar", "*-*-* *:00/15:00")
	timer.has(t, "Timer", "RandomizedDelaySec", "90")
	timer.has(t, "Timer", "Persistent", "true")
	timer.has(t, "Install", "WantedBy", "timers.target")

	// Printed, the same two files, each under its path.
	code, printed, _ := fwpush(t, "schedule", "--every", "15m", "--user", "root", "--report", "/var/lib/fwpush/site 1.json", exampleSite, "--", "--identity", `/root/.ssh/fw "push" 100%`)
	s, _ := os.ReadFile(filepath.Join(dir, "fwpush-site.service"))
	tm, _ := os.ReadFile(filepath.Join(dir, "fwpush-site.timer"))
	if want := "# /etc/systemd/system/fwpush-site.service\n" + string(s) + "\n# /etc/systemd/system/fwpush-site.timer\n" + string(tm); code != exitOK || printed != want {
		t.Errorf("printed units: exit %d (-want +got):\n%s", code, cmp.Diff(want, printed))
	}

	// A second install replaces what schedule wrote: a new --every.
	if code, _, errs := fwpush(t, "schedule", "--install", "--install-dir", dir, "--every", "2h", exampleSite); code != exitOK {
		t.Fatalf("schedule --install again: exit %d: %s", code, errs)
	}
	timer = parseUnit(t, filepath.Join(dir, "fwpush-site.timer"))
	timer.has(t, "Timer", "OnCalendar", "*-*-* 00/2:00:00")
	timer.has(t, "Timer", "RandomizedDelaySec", "300")

	t.Run("systemd-analyze verify", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze is not installed here: the units were checked key by key only")
		}
		// --man=no: fwpush's man pages are not installed here.
		out, err := exec.Command(analyze, "verify", "--man=no", filepath.Join(dir, "fwpush-site.service"), filepath.Join(dir, "fwpush-site.timer")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

func TestScheduleEvery(t *testing.T) {
	tests := []struct {
		every, calendar, cron string
	}{
		{"1m", "*-*-* *:*:00", "* * * * *"},
		{"5m", "*-*-* *:00/5:00", "*/5 * * * *"},
		{"15m", "*-*-* *:00/15:00", "*/15 * * * *"},
		{"30m", "*-*-* *:00/30:00", "*/30 * * * *"},
		{"60m", "*-*-* *:00:00", "0 * * * *"},
		{"1h", "*-*-* *:00:00", "0 * * * *"},
		{"3h", "*-*-* 00/3:00:00", "0 */3 * * *"},
		{"12h", "*-*-* 00/12:00:00", "0 */12 * * *"},
		{"24h", "*-*-* 00:00:00", "0 0 * * *"},
		{"7m", "", ""},
		{"90m", "", ""},
		{"5h", "", ""},
		{"48h", "", ""},
		{"30s", "", ""},
		{"90s", "", ""},
	}
	analyze, _ := exec.LookPath("systemd-analyze")
	for _, tt := range tests {
		dir := t.TempDir()
		code, _, errs := fwpush(t, "schedule", "--install", "--install-dir", dir, "--every", tt.every, exampleSite)
		if tt.calendar == "" {
			if code != exitInvalid || !strings.HasPrefix(errs, "fwpush: --every ") || !strings.Contains(errs, ": use minutes that divide an hour") {
				t.Errorf("--every %s: exit %d, stderr %q; want it refused", tt.every, code, errs)
			}
			continue
		}
		if code != exitOK {
			t.Errorf("--every %s: exit %d: %s", tt.every, code, errs)
			continue
		}
		parseUnit(t, filepath.Join(dir, "fwpush-site.timer")).has(t, "Timer", "OnCalendar", tt.calendar)
		_, line, _ := fwpush(t, "schedule", "--cron", "--every", tt.every, exampleSite)
		if !strings.Contains(line, "\n"+tt.cron+" flock -n ") {
			t.Errorf("--every %s --cron: %q, want the times %q", tt.every, line, tt.cron)
		}
		if analyze != "" {
			// systemd reads the calendar as meant: the next two runs are
			// --every apart.
			out, err := exec.Command(analyze, "calendar", "--iterations=2", tt.calendar).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Normalized form: "+tt.calendar) {
				t.Errorf("systemd-analyze calendar %s: %v\n%s", tt.calendar, err, out)
			}
		}
	}
}

func TestScheduleCron(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	site, err := filepath.Abs(exampleSite)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := fwpush(t, "schedule", "--cron", "--every", "10m", exampleSite, "--", "--limit", "db,!mysql-2")
	want := "*/10 * * * * flock -n /run/lock/fwpush-site.cron.lock " + exe + " run --quiet --metrics-file /var/lib/prometheus/node-exporter/fwpush-site.prom --limit 'db,!mysql-2' " + site + "\n"
	if lines := strings.SplitAfter(out, "\n"); code != exitOK || len(lines) != 3 || !strings.HasPrefix(lines[0], "# ") || lines[1] != want {
		t.Errorf("schedule --cron: exit %d, stderr %q, got:\n%s\nwant a comment, then:\n%s", code, errs, out, want)
	}

	dir := t.TempDir()
	code, _, errs = fwpush(t, "schedule", "--cron", "--install", "--install-dir", dir, "--user", "fw", "--report", "/var/lib/fwpush/site.json", "--metrics-file", "", exampleSite)
	file, _ := os.ReadFile(filepath.Join(dir, "fwpush-site"))
	want = "*/15 * * * * fw flock -n /run/lock/fwpush-site.cron.lock " + exe + " run --quiet --json " + site + " > /var/lib/fwpush/site.json\n"
	if code != exitOK || !strings.HasSuffix(string(file), "\n"+want) || !strings.Contains(string(file), "\nPATH=") {
		t.Errorf("schedule --cron --install: exit %d, stderr %q, wrote:\n%s\nwant it to end in:\n%s", code, errs, file, want)
	}
}

// What the crontab line quotes reaches fwpush as it was given, once cron
// has taken its % and sh its quotes.
func TestCronQuoting(t *testing.T) {
	args := []string{"plain", "with space", "it's", "100%", "$HOME", "`id`", "a\\b", "", "--limit=db,!mysql-2", "*"}
	s := schedule{name: "fwpush-site", argv: args}
	line := s.cronCommand()
	if strings.Count(line, "%") != strings.Count(line, `\%`) {
		t.Fatalf("an unescaped %% in %q: cron would cut the line there", line)
	}
	cmdline := strings.ReplaceAll(line, `\%`, "%") // as cron passes it to sh
	_, quoted, _ := strings.Cut(cmdline, ".cron.lock ")
	res, err := exec.Command("sh", "-c", `set -- `+quoted+`; for a in "$@"; do printf '[%s]\n' "$a"; done`).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	var want strings.Builder
	for _, a := range args {
		want.WriteString("[" + a + "]\n")
	}
	if diff := cmp.Diff(want.String(), string(res)); diff != "" {
		t.Errorf("sh read the line %q as (-want +got):\n%s", quoted, diff)
	}
}

func TestSystemdQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/usr/local/bin/fwpush", "/usr/local/bin/fwpush"},
		{"--limit=db,!mysql-2", `"--limit=db,!mysql-2"`},
		{"50%", "50%%"},
		{"with space", `"with space"`},
		{`say "hi"`, `"say \"hi\""`},
		{`$HOME\x`, `"$$HOME\\x"`},
		{"", `""`},
	}
	for _, tt := range tests {
		if got, err := systemdQuote(tt.in); err != nil || got != tt.want {
			t.Errorf("systemdQuote(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := systemdQuote("two\nlines"); err == nil {
		t.Error("a newline was written into a unit")
	}
}

func TestScheduleRefuses(t *testing.T) {
	dir := t.TempDir()
	foreign := filepath.Join(dir, "fwpush-site.service")
	if err := os.WriteFile(foreign, []byte("[Unit]\nDescription=someone else's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--every", "15m", "--random-delay", "15m"}, exitInvalid, "fwpush: --random-delay 15m0s: must be at least 0 and shorter than --every 15m0s"},
		{[]string{"--cron", "--random-delay", "1m"}, exitInvalid, "fwpush: --random-delay: cron has none"},
		{[]string{"--user", "root admin"}, exitInvalid, `fwpush: --user "root admin": not a user name`},
		{[]string{"--metrics-file", "fwpush.prom"}, exitInvalid, "fwpush: --metrics-file fwpush.prom: give an absolute path"},
		{[]string{"--name", "fw.push"}, exitInvalid, `fwpush: --name "fw.push": use letters, digits, - and _`},
		{[]string{"--", "--bogus"}, exitInvalid, "fwpush: flags after --: unknown flag: --bogus"},
		{[]string{"--", "--json"}, exitInvalid, "fwpush: flags after --: --json is schedule's to set"},
		{[]string{"--", "other.toml"}, exitInvalid, `fwpush: flags after --: "other.toml" is not a flag`},
		{[]string{"--install", "--install-dir", dir}, exitFailed, "fwpush: " + foreign + " exists and fwpush schedule did not write it"},
	}
	for _, tt := range tests {
		args := append([]string{"schedule"}, tt.args...)
		if i := slices.Index(args, "--"); i >= 0 {
			args = append(append(append([]string{}, args[:i]...), exampleSite), args[i:]...)
		} else {
			args = append(args, exampleSite)
		}
		code, out, errs := fwpush(t, args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("fwpush %v: exit %d, stdout %q, stderr %q; want exit %d and %q", args, code, out, errs, tt.code, tt.want)
		}
	}
	if got, _ := os.ReadFile(foreign); string(got) != "[Unit]\nDescription=someone else's\n" {
		t.Errorf("a unit schedule did not write was replaced:\n%s", got)
	}
	if code, _, _ := fwpush(t, "schedule", "../../examples/nope.toml"); code != exitInvalid {
		t.Errorf("schedule of a missing inventory: exit %d, want 3", code)
	}
}

func TestScheduleManPage(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := fwpush(t, "gen-man", dir); code != exitOK {
		t.Fatalf("gen-man: exit %d: %s", code, errs)
	}
	page, err := os.ReadFile(filepath.Join(dir, "fwpush-schedule.1"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(page), `\-`, "-")
	for _, want := range []string{"--every", "--install", "--cron", "--random-delay", "--report", "flock", "Persistent=true", "docs/metrics.md"} {
		if !strings.Contains(text, want) {
			t.Errorf("fwpush-schedule.1 lacks %q", want)
		}
	}
	if strings.Contains(text, "install-dir") {
		t.Error("fwpush-schedule.1 shows the hidden --install-dir")
	}
	run, _ := os.ReadFile(filepath.Join(dir, "fwpush-run.1"))
	if !strings.Contains(strings.ReplaceAll(string(run), `\-`, "-"), "--metrics-file") {
		t.Error("fwpush-run.1 lacks --metrics-file")
	}
}
