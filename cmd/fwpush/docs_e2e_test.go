package main

import (
	"cmp"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fwpush/fwpush/lab"
	"github.com/fwpush/fwpush/lab/labtest"
)

// TestDocsInLab runs the documentation's examples that need a fleet
// (<!-- test: lab=INVENTORY -->): each page's blocks of one inventory in
// order, on one lab of their own, the labs of different pages at once.
// "fwpush lab ..." runs on this machine as written, on the test's lab;
// any other fwpush command on the lab's controller, as lab exec runs it:
// an operator's laptop with the lab's key (see docs_test.go).
func TestDocsInLab(t *testing.T) {
	t.Parallel()
	labtest.Require(t)
	type group struct {
		page, inventory string
		blocks          []docBlock
	}
	var groups []*group
	for _, b := range docBlocks(t) {
		inv := b.opts["lab"]
		if inv == "" || b.opts["skip"] != "" {
			continue
		}
		i := len(groups) - 1
		for i >= 0 && (groups[i].page != b.page || groups[i].inventory != inv) {
			i--
		}
		if i < 0 {
			groups = append(groups, &group{page: b.page, inventory: inv})
			i = len(groups) - 1
		}
		groups[i].blocks = append(groups[i].blocks, b)
	}
	env := newDocEnv(t)
	for _, g := range groups {
		t.Run(g.page+":"+g.inventory, func(t *testing.T) {
			t.Parallel()
			runLabDocs(t, env, g.inventory, g.blocks)
		})
	}
}

// runLabDocs runs the blocks of one page that need the lab of inventory.
func runLabDocs(t *testing.T, env docEnv, inventory string, blocks []docBlock) {
	name := labtest.Name()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // as labtest's
		defer cancel()
		if err := lab.Down(ctx, name); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	copies := map[string]string{} // the copy of each dir the blocks name
	workIn := func(b docBlock) string {
		dir := cmp.Or(b.opts["dir"], "examples")
		if copies[dir] == "" {
			copies[dir] = workDir(t, dir)
		}
		return copies[dir]
	}
	dir := workIn(blocks[0])
	docName := strings.TrimSuffix(filepath.Base(inventory), filepath.Ext(inventory))
	onMachine := func(cmd string) string {
		cmd = strings.Replace(cmd, "fwpush lab ", "fwpush lab --name "+name+" ", 1)
		return strings.ReplaceAll(cmd, "/var/lib/fwpush-lab/"+docName+"/", "/var/lib/fwpush-lab/"+name+"/")
	}
	norm := func(l string) string {
		return normalize(l, env.home, "--name "+name+" ", "", name, docName)
	}
	// The lab's options, given on any block of the page.
	var controller []string // the environment of fwpush on the controller
	upFlags := ""
	for _, b := range blocks {
		if b.opts["known-hosts"] == "fresh" && controller == nil {
			controller = append(controller, "DOC_KNOWN_HOSTS="+filepath.Join(t.TempDir(), "known_hosts"))
		}
		upFlags = cmp.Or(upFlags, b.opts["up"])
	}
	var l *lab.Lab
	up := func() {
		var err error
		if l, err = lab.Open(name); err != nil {
			t.Fatalf("the lab is not up: %v", err)
		}
	}
	if s := blocks[0].steps(); len(s) == 0 || !strings.HasPrefix(s[0].cmd, "fwpush lab up ") {
		line := onMachine("fwpush lab up " + upFlags + " " + inventory)
		if out, code := env.run(t, dir, line); code != exitOK {
			t.Fatalf("%s: exit %d:\n%s", line, code, out)
		}
		up()
	}
	for _, b := range blocks {
		dir := workIn(b)
		if _, ok := b.opts["on-hosts"]; ok {
			if l == nil {
				up()
			}
			for _, line := range strings.Split(strings.TrimSpace(b.body), "\n") {
				if strings.HasPrefix(line, "#") {
					continue
				}
				for _, h := range l.Hosts {
					cmd := onMachine("fwpush lab shell " + inventory + " " + h.Name + ` -- sh -c "$DOC_CMD"`)
					if out, code := env.run(t, dir, cmd, "DOC_CMD="+line); code != exitOK {
						t.Errorf("%s: on %s: %s: exit %d:\n%s", b, h.Name, line, code, out)
					}
				}
			}
			continue
		}
		for _, s := range b.steps() {
			var out string
			var code int
			if strings.HasPrefix(s.cmd, "fwpush lab ") {
				out, code = env.run(t, dir, onMachine(s.cmd))
				if strings.HasPrefix(s.cmd, "fwpush lab up ") && code == exitOK {
					up()
				}
			} else {
				// On the controller, with the lab's key, as lab exec runs it.
				cmd := onMachine("fwpush lab exec " + inventory + ` -- bash -c 'FWPUSH_KNOWN_HOSTS=${DOC_KNOWN_HOSTS:-$FWPUSH_KNOWN_HOSTS} eval "$DOC_CMD"'`)
				out, code = env.run(t, dir, cmd, append(controller, "DOC_CMD="+s.cmd)...)
			}
			checkStep(t, b, s, out, code, true, norm)
		}
	}
}
