package main

import (
	"io"
	"os"

	"golang.org/x/term"
)

// style is how a report is drawn: tables with box-drawing borders on a
// terminal, plain columns elsewhere; colour only on a terminal, and never
// when NO_COLOR is set (https://no-color.org).
type style struct {
	tty   bool
	color bool
}

func styleFor(w io.Writer) style {
	tty := writerIsTerminal(w)
	return style{tty: tty, color: tty && os.Getenv("NO_COLOR") == ""}
}

func writerIsTerminal(w io.Writer) bool {
	file, ok := w.(*os.File)
	return ok && term.IsTerminal(int(file.Fd()))
}
