package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The lab's hosts have no network beyond the lab, so their apt installs
// from a local repository: the .deb files of the packages the lab's hosts
// may need, fetched once on the machine with apt-get download, with a
// Packages index. Each host's only apt source is this directory, which it
// sees read-only at the same path.
var repoDir = filepath.Join(Root, ".cache", "apt")

// basePackages are always in the repository: fwpush installs them on a
// server that lacks them (ipset-persistent where the policy has sets).
var basePackages = []string{"iptables-persistent", "netfilter-persistent", "ipset-persistent"}

// repoManifest lists the packages whose closure the repository holds.
const repoManifest = "fetched"

// packages lists what the repository must hold for this lab.
func (l *Lab) packages() []string {
	pkgs := slices.Clone(basePackages)
	for _, n := range l.Hosts {
		for _, p := range n.Options.Packages {
			if !slices.Contains(pkgs, p) {
				pkgs = append(pkgs, p)
			}
		}
	}
	return pkgs
}

// ensureRepo makes the local repository hold pkgs and whatever they need
// that the machine has not installed, fetching what it lacks and indexing
// it. It runs under the machine's lock (see lockRoot).
func ensureRepo(ctx context.Context, pkgs []string) error {
	if err := os.MkdirAll(repoDir, 0o755); err != nil {
		return err
	}
	manifest, _ := os.ReadFile(filepath.Join(repoDir, repoManifest))
	have := strings.Fields(string(manifest))
	var missing []string
	for _, p := range pkgs {
		if !slices.Contains(have, p) {
			missing = append(missing, p)
		}
	}
	if _, err := os.Stat(filepath.Join(repoDir, "Packages")); err == nil && len(missing) == 0 {
		return nil
	}
	apt := bin("apt-get")
	if !filepath.IsAbs(apt) {
		return errors.New("the lab's hosts install packages from a local apt repository, made with apt-get: this machine has none")
	}
	// The base packages together (they depend on each other), every other
	// one alone: ufw, say, conflicts with iptables-persistent.
	var groups [][]string
	var others []string
	for _, p := range missing {
		if slices.Contains(basePackages, p) {
			continue
		}
		others = append(others, p)
	}
	if slices.ContainsFunc(missing, func(p string) bool { return slices.Contains(basePackages, p) }) {
		groups = append(groups, basePackages)
	}
	for _, p := range others {
		groups = append(groups, []string{p})
	}
	fetch := func(g []string) error {
		debs, err := fetchable(ctx, apt, g)
		if err != nil {
			return err
		}
		return download(ctx, apt, debs, g)
	}
	updated := false
	for _, g := range groups {
		err := fetch(g)
		if err != nil && !updated {
			// A fresh machine often has no package lists yet, an old one
			// lists versions the mirror no longer has.
			updated = true
			if uerr := runQuiet(ctx, "", apt, "-qq", "update"); uerr != nil {
				return fmt.Errorf("%w (apt-get update: %v)", err, uerr)
			}
			err = fetch(g)
		}
		if err != nil {
			return err
		}
	}
	if err := writeIndex(ctx); err != nil {
		return fmt.Errorf("index %s: %w", repoDir, err)
	}
	have = append(have, missing...)
	slices.Sort(have)
	return os.WriteFile(filepath.Join(repoDir, repoManifest), []byte(strings.Join(slices.Compact(have), "\n")+"\n"), 0o644)
}

// deb is a package file apt would fetch.
type deb struct{ file, name, version string }

// fetchable lists the files apt would fetch to install pkgs on a machine
// like this one without them: pkgs themselves and their dependencies that
// are not installed (recommends left out, as the lab installs without).
func fetchable(ctx context.Context, apt string, pkgs []string) ([]deb, error) {
	args := append([]string{"install", "--reinstall", "--print-uris", "-qq", "-y", "--no-install-recommends"}, pkgs...)
	cmd := exec.CommandContext(ctx, apt, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	stdout, err := output(cmd)
	if err != nil {
		return nil, fmt.Errorf("packages %s: %w", strings.Join(pkgs, " "), err)
	}
	debs := parseURIs(stdout)
	for _, p := range pkgs {
		if !slices.ContainsFunc(debs, func(d deb) bool { return d.name == p }) {
			// Installed in a version apt can no longer fetch: take the
			// candidate.
			debs = append(debs, deb{name: p})
		}
	}
	return debs, nil
}

// parseURIs reads apt-get --print-uris: one 'URI' FILE SIZE HASH line per
// file, FILE being NAME_VERSION_ARCH.deb with the version's ':' escaped.
func parseURIs(out []byte) []deb {
	var debs []deb
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasSuffix(f[1], ".deb") {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(f[1], ".deb"), "_")
		if len(parts) != 3 {
			continue
		}
		version, err := url.PathUnescape(parts[1])
		if err != nil {
			continue
		}
		debs = append(debs, deb{file: f[1], name: parts[0], version: version})
	}
	return debs
}

// download fetches the files the repository lacks with apt-get download.
func download(ctx context.Context, apt string, debs []deb, pkgs []string) error {
	var want []string
	for _, d := range debs {
		if d.file != "" {
			if _, err := os.Stat(filepath.Join(repoDir, d.file)); err == nil {
				continue
			}
			want = append(want, d.name+"="+d.version)
		} else {
			want = append(want, d.name)
		}
	}
	if len(want) == 0 {
		return nil
	}
	tmp, err := os.MkdirTemp(repoDir, ".fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// apt's sandbox user cannot write into root's directory.
	args := append([]string{"-qq", "-o", "APT::Sandbox::User=root", "download"}, want...)
	if err := runQuiet(ctx, tmp, apt, args...); err != nil {
		return fmt.Errorf("fetch %s for the lab's apt repository: %w", strings.Join(pkgs, " "), err)
	}
	got, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil {
		return err
	}
	for _, f := range got {
		if err := os.Rename(f, filepath.Join(repoDir, filepath.Base(f))); err != nil {
			return err
		}
	}
	return nil
}

// writeIndex writes Packages and Release for every .deb in the repository,
// each replaced at once so that a host reading them never sees half.
func writeIndex(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(repoDir, "*.deb"))
	if err != nil {
		return err
	}
	slices.Sort(files)
	var idx bytes.Buffer
	for _, f := range files {
		control, err := output(exec.CommandContext(ctx, bin("dpkg-deb"), "--field", f))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		idx.Write(bytes.TrimRight(control, "\n"))
		fmt.Fprintf(&idx, "\nFilename: ./%s\nSize: %d\nSHA256: %s\n\n", filepath.Base(f), len(data), hex.EncodeToString(sum[:]))
	}
	sum := sha256.Sum256(idx.Bytes())
	release := fmt.Sprintf("Origin: fwpush-lab\nLabel: fwpush-lab\nDate: %s\nSHA256:\n %s %d Packages\n",
		time.Now().UTC().Format(time.RFC1123Z), hex.EncodeToString(sum[:]), idx.Len())
	if err := replaceFile(filepath.Join(repoDir, "Packages"), idx.Bytes()); err != nil {
		return err
	}
	return replaceFile(filepath.Join(repoDir, "Release"), []byte(release))
}

// replaceFile writes a file through a temporary one and a rename.
func replaceFile(path string, data []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// runQuiet runs a command in dir ("" for the current one) with apt's
// non-interactive settings; a failure is a *CommandError with its output.
func runQuiet(ctx context.Context, dir, name string, arg ...string) error {
	cmd := exec.CommandContext(ctx, name, arg...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	var out bytes.Buffer
	cmd.Stdout = io.Discard
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return &CommandError{Args: cmd.Args, Stderr: out.Bytes(), Err: err}
	}
	return nil
}
