package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// fullVersion is fwpush's version: the one `make` injects with -ldflags
// "-X main.version=...", else what the Go toolchain recorded in the binary.
func fullVersion() string {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(version, info)
}

// versionFrom picks the version: injected when it says something; else
// the module's version (go install github.com/fwpush/fwpush/cmd/fwpush@v1.2.0
// records "v1.2.0"; a build in a checkout records a pseudo-version with the
// commit and "+dirty"); else the commit of the checkout, if the build
// recorded it; "dev" only when nothing is known.
func versionFrom(injected string, info *debug.BuildInfo) string {
	if injected != "" && injected != "dev" {
		return injected
	}
	if info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "dev-" + rev
	if modified == "true" {
		v += "-dirty"
	}
	return v
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print fwpush's version",
		Long:    "version prints fwpush's version, as fwpush --version does.",
		Example: "  fwpush version\n  fwpush --version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "fwpush", fullVersion())
			return nil
		},
	}
}
