package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManCmd writes the man pages, one per command, from the commands'
// own help (make man; packagers). Hidden: it is for building fwpush, not
// for using it.
func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "gen-man DIR",
		Short: "Write fwpush's man pages (fwpush.1, fwpush-run.1, ...) into DIR",
		Long: `gen-man writes a man page for every command into DIR, from the same text as
--help. The date in their header is $SOURCE_DATE_EPOCH when set (reproducible
builds), else today.`,
		Example: "  fwpush gen-man docs/man\n  man -l docs/man/fwpush-run.1",
		Args:    cobra.ExactArgs(1),
		Hidden:  true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			header := &doc.GenManHeader{Title: "FWPUSH", Section: "1", Source: "fwpush " + fullVersion(), Manual: "fwpush manual"}
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}
