package main

import (
	"io"
	"log/slog"
)

// newLogger is where -v and -vv go: nothing by default (the report says
// what matters), each step with -v (slog's info and warnings: a host
// applied under the guard, iptables-persistent installed, a key recorded,
// a host failed), and every remote command and connection with -vv
// (debug), as text lines on stderr.
func newLogger(verbosity int, stderr io.Writer) *slog.Logger {
	if verbosity <= 0 {
		return slog.New(slog.DiscardHandler)
	}
	level := slog.LevelInfo
	if verbosity > 1 {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}
