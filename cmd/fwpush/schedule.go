package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/fwpush/fwpush/metrics"
)

// Where schedule puts what it writes, and the metrics by default: Debian's
// node_exporter reads its textfile directory.
const (
	systemdUnitDir    = "/etc/systemd/system"
	cronDir           = "/etc/cron.d"
	textfileDir       = "/var/lib/prometheus/node-exporter"
	scheduleSignature = "# Written by fwpush schedule"
)

type scheduleFlags struct {
	every       time.Duration
	randomDelay time.Duration
	delaySet    bool // --random-delay given: else a tenth of --every
	metricsFile string
	metricsSet  bool // --metrics-file given: else named after the unit
	name        string
	user        string
	report      string
	cron        bool
	install     bool
	// installDir replaces /etc/systemd/system (or /etc/cron.d) for
	// --install, and keeps systemctl out of it: for tests.
	installDir string
}

func newScheduleCmd() *cobra.Command {
	var f scheduleFlags
	cmd := &cobra.Command{
		Use:   "schedule [flags] INVENTORY [-- RUN-FLAGS...]",
		Short: "Write a systemd timer (or a cron line) that runs fwpush run unattended",
		Long: `schedule prints a systemd service and timer that run

  fwpush run --quiet --json --metrics-file FILE INVENTORY

every --every, or with --install writes them into /etc/systemd/system and
reloads systemd; enable the timer with systemctl enable --now NAME.timer.
The paths are absolute: this fwpush binary's own, and the inventory's. The
timer fires at fixed times of the day (OnCalendar) with a random delay of
up to --random-delay, and with Persistent=true catches up at boot on a run
missed while the machine was off. The service is a oneshot that runs as
--user; the JSON report goes to the journal (journalctl -u NAME.service
-o cat), or with --report to a file that each run replaces. A run that
fails (a host unreachable, a mismatch) fails the service, as systemctl
--failed and OnFailure= see it.

The metrics go to FILE in node_exporter's textfile directory (Debian's
/var/lib/prometheus/node-exporter, named after the unit): see
docs/metrics.md for the series and an alert for a fleet not enforced for a
day. --metrics-file '' leaves them out.

With --cron, schedule prints a crontab line instead (for crontab -e), or
with --install writes /etc/cron.d/NAME. The line runs fwpush under flock -n,
so that a run still going when the next is due makes that one skip. It
uses --quiet without --json: cron mails what a job prints, and --quiet
prints only when something changed or failed; --report FILE sends the JSON
report to FILE instead. Cron has no random delay.

--every is minutes that divide an hour (1m, 2m, 5m, 10m, 15m, 20m, 30m),
hours that divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h) or 24h, so that the
timer and the cron line fire at the same times. Flags after -- are passed
to fwpush run as they are (--identity, --limit, -F ...), checked first.
The names are fwpush-INVENTORY (fwpush-site.service, fwpush-site.timer,
fwpush-site.prom for site.toml), or --name.

Exit status: 0 written; 1 the files could not be written; 3 invalid input.`,
		Example: `  fwpush schedule /etc/fwpush/site.toml                 # print the units: every 15 minutes
  fwpush schedule --every 1h --install /etc/fwpush/site.toml && systemctl enable --now fwpush-site.timer
  fwpush schedule --every 30m --report /var/lib/fwpush/site.json /etc/fwpush/site.toml -- --identity /root/.ssh/fwpush
  fwpush schedule --cron /etc/fwpush/site.toml          # a line for crontab -e
  fwpush schedule --cron --install --every 10m /etc/fwpush/site.toml   # /etc/cron.d/fwpush-site`,
		Args: func(cmd *cobra.Command, args []string) error {
			if n := cmd.ArgsLenAtDash(); n >= 0 {
				args = args[:n]
			}
			return inventoryArg(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var extra []string
			if n := cmd.ArgsLenAtDash(); n >= 0 {
				extra = args[n:]
			}
			f.metricsSet = cmd.Flags().Changed("metrics-file")
			f.delaySet = cmd.Flags().Changed("random-delay")
			return runSchedule(cmd, args[0], extra, f)
		},
	}
	cmd.Flags().DurationVar(&f.every, "every", 15*time.Minute, "how often to run: minutes that divide an hour, hours that divide a day, or 24h")
	cmd.Flags().DurationVar(&f.randomDelay, "random-delay", 0, "the timer's RandomizedDelaySec: runs start up to this late (default a tenth of --every, at most 5m)")
	cmd.Flags().StringVar(&f.metricsFile, "metrics-file", "", "where the runs write their metrics, an absolute `FILE` (default "+textfileDir+"/NAME.prom; '' for none)")
	cmd.Flags().StringVar(&f.name, "name", "", "`NAME` of the units, the cron file and the default metrics file (default fwpush-INVENTORY)")
	cmd.Flags().StringVar(&f.user, "user", "", "the `USER` the runs run as, whose ~/.ssh they use (default: you)")
	cmd.Flags().StringVar(&f.report, "report", "", "write each run's JSON report to `FILE`, replacing the last one, instead of the journal (systemd 248 or later)")
	cmd.Flags().BoolVar(&f.cron, "cron", false, "a crontab line instead of systemd units")
	cmd.Flags().BoolVar(&f.install, "install", false, "write the units into "+systemdUnitDir+" and reload systemd (with --cron: "+cronDir+"/NAME)")
	cmd.Flags().StringVar(&f.installDir, "install-dir", "", "write the files of --install here, and reload nothing (tests)")
	_ = cmd.Flags().MarkHidden("install-dir")
	return cmd
}

// schedule is what schedule writes: how fwpush is run, and when.
type schedule struct {
	name      string   // fwpush-site
	inventory string   // absolute
	argv      []string // the command the service and the cron line run
	user      string
	every     time.Duration
	delay     time.Duration
	report    string
	calendar  string // OnCalendar=
	cronTimes string // the five time fields of a crontab line
}

var (
	unitName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	notUnit  = regexp.MustCompile(`[^A-Za-z0-9_-]+`)
	// plainWord needs no quotes in sh nor in a unit file.
	plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)
)

func runSchedule(cmd *cobra.Command, path string, extra []string, f scheduleFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	s, err := newSchedule(cmd, path, extra, f)
	if err != nil {
		return err
	}
	dir, order, files, err := s.files(f)
	if err != nil {
		return err
	}
	if !f.install {
		for i, name := range order {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			if !f.cron {
				fmt.Fprintf(stdout, "# %s\n", filepath.Join(dir, name))
			}
			fmt.Fprint(stdout, files[name])
		}
		return nil
	}
	for _, name := range order {
		if err := installFile(filepath.Join(dir, name), files[name]); err != nil {
			return &exitError{code: exitFailed, err: err}
		}
		fmt.Fprintf(stdout, "wrote %s\n", filepath.Join(dir, name))
	}
	if f.cron {
		return nil
	}
	if f.installDir == "" {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			if out, err := exec.CommandContext(cmd.Context(), "systemctl", "daemon-reload").CombinedOutput(); err != nil {
				return &exitError{code: exitFailed, err: fmt.Errorf("systemctl daemon-reload: %v: %s", err, bytes.TrimSpace(out))}
			}
		} else {
			fmt.Fprintln(stderr, "fwpush: systemd is not running here: the units take effect where it runs")
		}
	}
	fmt.Fprintf(stdout, "start it with: systemctl enable --now %s.timer\n", s.name)
	return nil
}

// newSchedule checks the flags and the inventory, and returns the
// schedule they ask for. Warnings (a binary in a temporary directory, no
// textfile directory here) go to cmd's stderr.
func newSchedule(cmd *cobra.Command, path string, extra []string, f scheduleFlags) (schedule, error) {
	stderr := cmd.ErrOrStderr()
	plan, _, err := loadPlanFor(cmd, path, false)
	if err != nil {
		return schedule{}, err
	}
	s := schedule{every: f.every, report: f.report, name: f.name, user: f.user}
	if s.calendar, s.cronTimes, err = times(f.every); err != nil {
		return s, &usageError{err}
	}
	s.delay = f.randomDelay
	switch {
	case f.cron && f.delaySet:
		return s, &usageError{errors.New("--random-delay: cron has none; leave it out with --cron")}
	case !f.delaySet:
		s.delay = min(f.every/10, 5*time.Minute).Truncate(time.Second)
	case s.delay < 0 || s.delay >= f.every:
		return s, &usageError{fmt.Errorf("--random-delay %s: must be at least 0 and shorter than --every %s", s.delay, f.every)}
	}
	if s.name == "" {
		s.name = "fwpush-" + notUnit.ReplaceAllString(metrics.Name(plan.Inventory), "-")
	}
	if !unitName.MatchString(s.name) {
		return s, &usageError{fmt.Errorf("--name %q: use letters, digits, - and _", s.name)}
	}
	if s.user == "" {
		u, err := user.Current()
		if err != nil {
			return s, fmt.Errorf("--user: %w", err)
		}
		s.user = u.Username
	}
	if !userName.MatchString(s.user) {
		return s, &usageError{fmt.Errorf("--user %q: not a user name", s.user)}
	}
	if s.inventory, err = filepath.Abs(path); err != nil {
		return s, err
	}
	if err := checkRunFlags(extra); err != nil {
		return s, err
	}
	metricsFile := f.metricsFile
	if !f.metricsSet {
		metricsFile = filepath.Join(textfileDir, s.name+".prom")
	}
	for flag, p := range map[string]string{"--metrics-file": metricsFile, "--report": f.report} {
		if p != "" && !filepath.IsAbs(p) {
			return s, &usageError{fmt.Errorf("%s %s: give an absolute path: the runs do not start in this directory", flag, p)}
		}
	}

	exe, err := os.Executable()
	if err != nil {
		return s, fmt.Errorf("this fwpush's path: %w", err)
	}
	if strings.HasPrefix(exe, os.TempDir()+string(filepath.Separator)) {
		fmt.Fprintf(stderr, "fwpush: warning: this fwpush is %s, in a temporary directory; install it (make build, or go install) and run its schedule\n", exe)
	}
	s.argv = []string{exe, "run", "--quiet"}
	if !f.cron || f.report != "" {
		s.argv = append(s.argv, "--json")
	}
	if metricsFile != "" {
		s.argv = append(s.argv, "--metrics-file", metricsFile)
		if _, err := os.Stat(filepath.Dir(metricsFile)); err != nil {
			fmt.Fprintf(stderr, "fwpush: warning: %s does not exist here: the runs will fail until node_exporter's textfile directory is there (or pass another --metrics-file)\n", filepath.Dir(metricsFile))
		}
	}
	s.argv = append(append(s.argv, extra...), s.inventory)
	return s, nil
}

// files returns what schedule writes, by name in the order it prints
// them, and the directory --install writes them into.
func (s schedule) files(f scheduleFlags) (dir string, order []string, files map[string]string, err error) {
	if f.cron {
		content := s.crontab()
		if f.install {
			content = s.cronFile()
		}
		return cmp.Or(f.installDir, cronDir), []string{s.name}, map[string]string{s.name: content}, nil
	}
	service, timer, err := s.service()
	if err != nil {
		return "", nil, nil, &usageError{err}
	}
	order = []string{s.name + ".service", s.name + ".timer"}
	return cmp.Or(f.installDir, systemdUnitDir), order, map[string]string{order[0]: service, order[1]: timer}, nil
}

// checkRunFlags checks the flags passed on to fwpush run as run itself
// would, so that a mistake is found now rather than at 3 a.m.
func checkRunFlags(extra []string) error {
	if len(extra) == 0 {
		return nil
	}
	run := newRunCmd()
	if err := run.ParseFlags(extra); err != nil {
		return &usageError{fmt.Errorf("flags after --: %w", err)}
	}
	if args := run.Flags().Args(); len(args) > 0 {
		return &usageError{fmt.Errorf("flags after --: %q is not a flag: the inventory comes before --", args[0])}
	}
	for _, own := range []string{"metrics-file", "json", "quiet", "dry-run"} {
		if run.Flags().Changed(own) {
			return &usageError{fmt.Errorf("flags after --: --%s is schedule's to set", own)}
		}
	}
	return nil
}

// times returns when a run every d starts, as systemd's OnCalendar and as
// a crontab line's five time fields: at fixed times of the day, the same
// for both.
func times(d time.Duration) (calendar, cron string, err error) {
	switch m := int(d / time.Minute); {
	case d%time.Minute != 0 || d <= 0:
	case d < time.Hour && 60%m == 0:
		if m == 1 {
			return "*-*-* *:*:00", "* * * * *", nil
		}
		return fmt.Sprintf("*-*-* *:00/%d:00", m), fmt.Sprintf("*/%d * * * *", m), nil
	case d == 24*time.Hour:
		return "*-*-* 00:00:00", "0 0 * * *", nil
	case d < 24*time.Hour && d%time.Hour == 0 && 24%(m/60) == 0:
		h := m / 60
		if h == 1 {
			return "*-*-* *:00:00", "0 * * * *", nil
		}
		return fmt.Sprintf("*-*-* 00/%d:00:00", h), fmt.Sprintf("0 */%d * * *", h), nil
	}
	return "", "", fmt.Errorf("--every %s: use minutes that divide an hour (1m, 2m, 5m, 10m, 15m, 20m, 30m), hours that divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h) or 24h", d)
}

// every says d as --every takes it: 15m, 2h.
func every(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// service returns the service and timer units.
func (s schedule) service() (service, timer string, err error) {
	var exec []string
	for _, a := range s.argv {
		q, err := systemdQuote(a)
		if err != nil {
			return "", "", err
		}
		exec = append(exec, q)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: fwpush run on %s every %s.\n", scheduleSignature, s.inventory, every(s.every))
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=fwpush: enforce the firewall policy of %s\n", specifierEscape(s.inventory))
	b.WriteString("Wants=network-online.target\nAfter=network-online.target\n\n")
	b.WriteString("[Service]\nType=oneshot\n")
	fmt.Fprintf(&b, "User=%s\n", specifierEscape(s.user))
	fmt.Fprintf(&b, "ExecStart=%s\n", strings.Join(exec, " "))
	if s.report != "" {
		fmt.Fprintf(&b, "StandardOutput=truncate:%s\n", specifierEscape(s.report))
	}
	fmt.Fprintf(&b, "SyslogIdentifier=%s\n", s.name)
	service = b.String()

	b.Reset()
	fmt.Fprintf(&b, "%s: runs %s.service every %s.\n", scheduleSignature, s.name, every(s.every))
	b.WriteString("[Unit]\n")
	fmt.Fprintf(&b, "Description=fwpush run on %s every %s\n\n", specifierEscape(s.inventory), every(s.every))
	b.WriteString("[Timer]\n")
	fmt.Fprintf(&b, "OnCalendar=%s\n", s.calendar)
	fmt.Fprintf(&b, "RandomizedDelaySec=%d\n", int(s.delay/time.Second))
	b.WriteString("Persistent=true\n\n")
	b.WriteString("[Install]\nWantedBy=timers.target\n")
	return service, b.String(), nil
}

// crontab returns a line for crontab -e.
func (s schedule) crontab() string {
	return fmt.Sprintf("# fwpush run on %s every %s; flock -n skips a run while the last one goes on\n%s %s\n",
		s.inventory, every(s.every), s.cronTimes, s.cronCommand())
}

// cronFile returns a file for /etc/cron.d, whose lines name the user.
func (s schedule) cronFile() string {
	return fmt.Sprintf("%s: fwpush run on %s every %s.\n# flock -n skips a run while the last one goes on.\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n%s %s %s\n",
		scheduleSignature, s.inventory, every(s.every), s.cronTimes, s.user, s.cronCommand())
}

// cronCommand is the command of the crontab line: the run under flock,
// quoted for the shell, with cron's % escaped.
func (s schedule) cronCommand() string {
	words := []string{"flock", "-n", filepath.Join("/run/lock", s.name+".cron.lock")}
	for _, a := range s.argv {
		words = append(words, shellQuote(a))
	}
	line := strings.Join(words, " ")
	if s.report != "" {
		line += " > " + shellQuote(s.report)
	}
	// cron turns an unescaped % into a newline, even inside quotes.
	return strings.ReplaceAll(line, "%", `\%`)
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// systemdQuote quotes s as one word of an ExecStart= line: specifiers (%)
// and variables ($) kept literal, quotes and backslashes escaped.
func systemdQuote(s string) (string, error) {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", fmt.Errorf("%q: a control character cannot be written in a unit file", s)
	}
	if plainWord.MatchString(s) {
		return specifierEscape(s), nil
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`, nil
}

// specifierEscape keeps the % of a value literal in a unit file.
func specifierEscape(s string) string { return strings.ReplaceAll(s, "%", "%%") }

// installFile writes a file of schedule's, replacing one schedule wrote
// before (an --every changed) but never another's.
func installFile(path, content string) error {
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case !strings.HasPrefix(string(old), scheduleSignature):
		return fmt.Errorf("%s exists and fwpush schedule did not write it: remove it, or choose another --name", path)
	}
	tmp := path + ".fwpush-new"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
