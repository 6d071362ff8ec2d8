package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jedib0t/go-pretty/v6/text"
	"golang.org/x/term"
)

// progress shows what is under way. On a terminal it keeps a block at the
// bottom of the screen, redrawn in place several times a second: the hosts
// in flight with their current step and how long they have been at it,
// and the check's probes done out of its total; finished hosts are printed
// above it and scroll away. Anywhere else (a file, a pipe, cron's mail)
// nothing is redrawn: the lines above the block are printed as they come,
// and the block never is.
type progress struct {
	w     io.Writer
	live  bool // redraw a block: a terminal, nobody else writing to it
	color bool
	size  func() (width, height int)

	mu     sync.Mutex
	hosts  map[string]*flight
	order  []string // hosts in flight, in the order they started
	probes struct{ done, total int }
	drawn  int // lines of the block now on the screen
	stop   chan struct{}
	ticker sync.WaitGroup
	closed bool
}

// flight is a host in flight.
type flight struct {
	step  string
	since time.Time
}

// tick is how often the block is redrawn to advance its clocks.
const tick = 100 * time.Millisecond

// newProgress draws on w as st says; live false never draws a block (no
// terminal, or -v writing logs to the same screen).
func newProgress(w io.Writer, st style, live bool) *progress {
	p := &progress{w: w, live: live && st.tty, color: st.color, hosts: map[string]*flight{}, size: func() (int, int) { return 80, 24 }}
	if f, ok := w.(*os.File); ok {
		p.size = func() (int, int) {
			wd, ht, err := term.GetSize(int(f.Fd()))
			if err != nil || wd <= 0 || ht <= 0 {
				return 80, 24
			}
			return wd, ht
		}
	}
	if p.live {
		p.stop = make(chan struct{})
		p.ticker.Add(1)
		go p.loop()
	}
	return p
}

func (p *progress) loop() {
	defer p.ticker.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			p.redraw(nil)
			p.mu.Unlock()
		}
	}
}

// start shows host in flight.
func (p *progress) start(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.hosts[host]; !ok {
		p.order = append(p.order, host)
	}
	p.hosts[host] = &flight{step: "start", since: time.Now()}
	p.redraw(nil)
}

// step shows host at a new step.
func (p *progress) step(host, step string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.hosts[host]; ok {
		f.step = step
	}
	p.redraw(nil)
}

// done takes host out of the block and prints line above it.
func (p *progress) done(host, line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.hosts, host)
	p.order = slices.DeleteFunc(p.order, func(h string) bool { return h == host })
	p.redraw([]string{line})
}

// checking shows the check's progress: total probes to make.
func (p *progress) checking(total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes.done, p.probes.total = 0, total
	p.redraw(nil)
}

// probed counts n more probes made.
func (p *progress) probed(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probes.done += n
}

// close erases the block and stops redrawing it; what follows is printed
// where the block was.
func (p *progress) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.hosts, p.order, p.probes.total = map[string]*flight{}, nil, 0
	p.redraw(nil)
	p.mu.Unlock()
	if p.stop != nil {
		close(p.stop)
		p.ticker.Wait()
	}
}

// redraw erases the block, prints lines where it was (they scroll up with
// the rest of the output) and draws the block anew below them. Without a
// terminal it only prints lines. The caller holds p.mu.
func (p *progress) redraw(lines []string) {
	if !p.live {
		for _, l := range lines {
			fmt.Fprintln(p.w, l)
		}
		return
	}
	var b strings.Builder
	if p.drawn > 0 {
		// Up to the block's first line, then erase to the end of the screen.
		fmt.Fprintf(&b, "\r\x1b[%dA\x1b[J", p.drawn)
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	block := p.block()
	for _, l := range block {
		b.WriteString(l + "\n")
	}
	p.drawn = len(block)
	_, _ = io.WriteString(p.w, b.String())
}

// block is what the block shows now, one terminal line each: longer lines
// are cut, since a line the terminal wraps would throw the redraw off by
// one, and hosts beyond the screen's height are counted, not listed.
func (p *progress) block() []string {
	if p.closed {
		return nil
	}
	width, height := p.size()
	now := time.Now()
	room := max(height-3, 1)
	var out []string
	for i, h := range p.order {
		if i == room-1 && len(p.order) > room {
			out = append(out, fmt.Sprintf("  … and %d more hosts", len(p.order)-i))
			break
		}
		f := p.hosts[h]
		step := fmt.Sprintf("%-8s", f.step)
		if p.color {
			step = text.FgCyan.Sprint(step)
		}
		out = append(out, fmt.Sprintf("  %-20s %s %5.1fs", h, step, now.Sub(f.since).Seconds()))
	}
	if p.probes.total > 0 {
		out = append(out, fmt.Sprintf("check: %d/%d probes", p.probes.done, p.probes.total))
	}
	for i, l := range out {
		out[i] = cut(l, width-1)
	}
	return out
}

// cut shortens a line to at most n visible characters, keeping its escape
// sequences whole.
func cut(line string, n int) string {
	if text.RuneWidthWithoutEscSequences(line) <= n {
		return line
	}
	return text.Trim(line, n)
}
