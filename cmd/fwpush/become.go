package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/term"
)

// becomePass is the password sudo wants on hosts that become root with it:
// asked once on the terminal with --ask-become-pass (never echoed), else
// $FWPUSH_BECOME_PASS, for automation; "" when neither (sudo must then want
// none). It goes to each host on stdin, never on a command line and never
// into a log.
func becomePass(ask bool) (string, error) {
	pw := os.Getenv("FWPUSH_BECOME_PASS")
	if ask {
		tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
		if err != nil {
			return "", &inputError{errors.New("--ask-become-pass needs a terminal to ask on: set FWPUSH_BECOME_PASS instead")}
		}
		defer tty.Close()
		fmt.Fprint(tty, "BECOME password: ")
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(tty)
		if err != nil {
			return "", fmt.Errorf("read the become password: %w", err)
		}
		pw = string(b)
	}
	if strings.ContainsAny(pw, "\n\r") {
		return "", &inputError{errors.New("the become password has a line break: sudo reads one line")}
	}
	return pw, nil
}
