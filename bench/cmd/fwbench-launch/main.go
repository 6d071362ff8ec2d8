// Command fwbench-launch starts one program for fwbench and reports that
// program's own resource use: fwbench cannot read it itself.
//
// Go starts every child with vfork (CLONE_VM), and when the child execs,
// Linux folds the peak RSS of the memory it leaves, its parent's, into the
// child's: wait4 in fwbench would report fwbench's own peak for anything
// it starts. This launcher is a tiny program in between, so what it leaves
// in the child's peak is its own small one, which it reports too.
//
//	fwbench-launch PROGRAM [ARGS...]   (fd 3: where the report goes)
//
// The report is one line, "wall_ns cpu_ns maxrss_bytes launcher_maxrss_bytes",
// CPU being user plus system time of the program and of the children it
// waited for. The exit status is the program's (128+N for signal N).
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	out := os.NewFile(3, "report")
	if len(args) == 0 || out == nil {
		fmt.Fprintln(os.Stderr, "usage: fwbench-launch PROGRAM [ARGS...] 3>REPORT")
		return 127
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// The program dies with the launcher, which fwbench kills when it is
	// interrupted.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if cmd.ProcessState == nil {
		fmt.Fprintf(os.Stderr, "fwbench-launch: %v\n", err)
		return 127
	}
	ps := cmd.ProcessState
	var rss int64
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss * 1024 // Linux reports KiB
	}
	if _, err := fmt.Fprintf(out, "%d %d %d %d\n", wall, ps.UserTime()+ps.SystemTime(), rss, peakRSS()); err != nil {
		fmt.Fprintf(os.Stderr, "fwbench-launch: %v\n", err)
		return 127
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// peakRSS is this process's peak resident memory (VmHWM), in bytes: an
// upper bound of what its exec'd child inherited.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
