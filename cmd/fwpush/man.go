package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
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
			root := cmd.Root()
			root.DisableAutoGenTag = true
			if err := writeMan(root, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}

// writeMan writes the pages of c and of every command below it, as
// cobra/doc's GenManTree does, each titled after its command
// (FWPUSH-RUN(1)), with its flags as --help shows them.
func writeMan(c *cobra.Command, dir string) error {
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		if err := writeMan(sub, dir); err != nil {
			return err
		}
	}
	// No Title: cobra/doc then titles the page after the command.
	header := &doc.GenManHeader{Section: "1", Source: "fwpush " + fullVersion(), Manual: "fwpush manual"}
	var page bytes.Buffer
	if err := doc.GenMan(c, header, &page); err != nil {
		return err
	}
	name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
	return os.WriteFile(filepath.Join(dir, name), humanFlags(page.Bytes(), c), 0o644)
}

// flagLine is the first line of a flag in a page cobra/doc wrote:
// "\fB-v\fP, \fB--verbose\fP[=0]", "\fB--timeout\fP=0s", "\fB--via\fP=[]".
var flagLine = regexp.MustCompile(`(?m)^(?:\\fB\\?-[^\\]+\\fP, )?\\fB\\?-\\?-([A-Za-z0-9-]+)\\fP.*\n\t.*$`)

// humanFlags rewrites the flags of page, cobra/doc's man page of c, as
// a person writes them and as --help shows them: "-v, --verbose count",
// "--timeout duration", a flag's default only where it says something
// ("(default 2s)"), not "--timeout=0s", "--verbose[=0]" or "--via=[]".
func humanFlags(page []byte, c *cobra.Command) []byte {
	return flagLine.ReplaceAllFunc(page, func(line []byte) []byte {
		name := string(flagLine.FindSubmatch(line)[1])
		f := c.Flags().Lookup(name)
		if f == nil {
			f = c.InheritedFlags().Lookup(name)
		}
		if f == nil {
			return line
		}
		head, usage := helpLine(f)
		var b strings.Builder
		b.WriteString(".TP\n") // a tagged paragraph: the usage indented below the flag
		for i, word := range strings.Fields(head) {
			if i > 0 {
				b.WriteByte(' ')
			}
			if strings.HasPrefix(word, "-") {
				name, comma := strings.CutSuffix(word, ",")
				b.WriteString(`\fB` + strings.ReplaceAll(name, "-", `\-`) + `\fP`)
				if comma {
					b.WriteByte(',')
				}
				continue
			}
			b.WriteString(`\fI` + word + `\fP`)
		}
		b.WriteString("\n" + usage)
		return []byte(b.String())
	})
}

// helpLine is f as --help shows it: its names and value ("-l, --limit
// string"), and its usage with its default where that says something.
func helpLine(f *pflag.Flag) (head, usage string) {
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.AddFlag(f)
	line := strings.TrimSpace(fs.FlagUsagesWrapped(0))
	head, usage, _ = strings.Cut(line, "  ") // pflag puts two spaces or more between
	return head, strings.TrimSpace(usage)
}
