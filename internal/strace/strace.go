// Package strace reads the logs of `strace -f -ff -o PREFIX`: one file per
// process, PREFIX.PID, each line whole. runner/remote's fork budgets and the
// bench's count of the servers' processes read them this one way.
package strace

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Proc is what one traced process did: the processes it forked (its
// threads aside) and the programs it ran.
type Proc struct {
	Children []int
	Execs    []Exec
}

// Exec is one successful execve: the program and its arguments as strace
// prints them.
type Exec struct {
	Path, Args string
}

// A fork: the parent's line, with the child's pid; a thread (CLONE_THREAD)
// is no process.
var forkLine = regexp.MustCompile(`^(?:clone|clone3|fork|vfork)\(.*\) +-? *= ([1-9][0-9]*)$`)

// A successful exec: the program and its arguments.
var execLine = regexp.MustCompile(`^execve\("([^"]*)", \[(.*)\], .*= 0$`)

// Parse reads one process's log.
func Parse(data []byte) Proc {
	var p Proc
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := forkLine.FindStringSubmatch(line); m != nil && !strings.Contains(line, "CLONE_THREAD") {
			pid, _ := strconv.Atoi(m[1])
			p.Children = append(p.Children, pid)
		}
		if m := execLine.FindStringSubmatch(line); m != nil {
			p.Execs = append(p.Execs, Exec{Path: m[1], Args: m[2]})
		}
	}
	return p
}

// Read reads the logs prefix.PID, by pid; files of other names are not
// strace's and are left out.
func Read(prefix string) (map[int]Proc, error) {
	paths, err := filepath.Glob(prefix + ".*")
	if err != nil {
		return nil, err
	}
	procs := map[int]Proc{}
	for _, path := range paths {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Ext(path), "."))
		if err != nil {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		procs[pid] = Parse(data)
	}
	if len(procs) == 0 {
		return nil, fmt.Errorf("no strace log %s.*", prefix)
	}
	return procs, nil
}
