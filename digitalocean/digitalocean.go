// Package digitalocean reads the hosts of an inventory's [digitalocean]
// table: the droplets that carry its role tags, through DigitalOcean's API
// and its official client, godo. It is the only package that talks to the
// API; what it finds, package inventory validates with the file's hosts.
package digitalocean

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/godo"

	"github.com/fwpush/fwpush/inventory"
)

// Bounds on talking to the API.
const (
	// PerPage is the page size asked for: the API's largest.
	PerPage = 200
	// MaxPages bounds the pages of one tag: a paging loop ends.
	MaxPages = 1000
	// RequestTimeout bounds each request, the reading of its answer
	// included.
	RequestTimeout = 30 * time.Second
	// MaxRetries is how often a request the API rate-limits (429) is sent
	// again, each after the wait the API asks for (Retry-After).
	MaxRetries = 3
	// MaxRetryWait bounds one such wait: a longer one fails at once, since
	// a cron run had better fail and be retried than hang.
	MaxRetryWait = time.Minute
	// defaultRetryWait is the wait when the API says none.
	defaultRetryWait = 2 * time.Second
)

// Client reads droplets for one [digitalocean] table.
type Client struct {
	cfg  inventory.DigitalOcean
	godo *godo.Client
	// wait sleeps d unless ctx ends first; tests stand in for it.
	wait func(ctx context.Context, d time.Duration) error
	now  func() time.Time
}

// New returns a client of the API at cfg.Endpoint that sends token. The
// token goes only into the Authorization header of its requests: no error
// or message holds it.
func New(cfg inventory.DigitalOcean, token string) (*Client, error) {
	base := cfg.Endpoint
	if !strings.HasSuffix(base, "/") {
		base += "/" // godo resolves "v2/droplets" against it
	}
	hc := &http.Client{Timeout: RequestTimeout, Transport: bearer{token: token, base: http.DefaultTransport}}
	g, err := godo.New(hc, godo.SetBaseURL(base), godo.SetUserAgent("fwpush"))
	if err != nil {
		return nil, fmt.Errorf("digitalocean: %w", err)
	}
	return &Client{cfg: cfg, godo: g, wait: sleep, now: time.Now}, nil
}

// bearer authenticates each request with the token.
type bearer struct {
	token string
	base  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Invalid is droplets that cannot be hosts as they are — two role tags,
// a region no site is mapped to, an address that is not one — each named
// in a line. Nothing is wrong with the API: the droplets need fixing.
type Invalid struct {
	Problems []string
}

func (e *Invalid) Error() string { return strings.Join(e.Problems, "\n") }

// Hosts lists the droplets that carry a tag of the table's roles, as the
// hosts they are, sorted by name: name, role, site, public IPv4 and IPv6
// and private (VPC) IPv4. Droplets still being created ("new") or
// archived are left out, each with a note saying so: they cannot take a
// policy yet, and the next run takes them. The error is one line for a
// failure of the API (its status and message), or an *Invalid.
func (c *Client) Hosts(ctx context.Context) ([]inventory.Found, []string, error) {
	type seen struct {
		d    godo.Droplet
		tags []string // the role tags it was listed under
	}
	byID := map[int]*seen{}
	var order []int
	for _, tag := range c.cfg.Tags() {
		droplets, err := c.listTag(ctx, tag)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range droplets {
			s, ok := byID[d.ID]
			if !ok {
				s = &seen{d: d}
				byID[d.ID] = s
				order = append(order, d.ID)
			}
			s.tags = append(s.tags, tag)
		}
	}
	var found []inventory.Found
	var notes, problems []string
	for _, id := range order {
		s := byID[id]
		name := fmt.Sprintf("droplet %s (id %d)", s.d.Name, s.d.ID)
		// Its own list of tags is the truth; the tags it was listed under
		// stand in when a response leaves it out.
		tags := s.tags
		for _, t := range s.d.Tags {
			if _, ok := c.cfg.Roles[t]; ok && !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
		slices.Sort(tags)
		role, roleTag, clash := "", "", false
		for _, t := range tags {
			switch r := c.cfg.Roles[t]; {
			case role == "":
				role, roleTag = r, t
			case r != role:
				clash = true
			}
		}
		if clash {
			problems = append(problems, fmt.Sprintf("%s has the tags %s, which name different roles: give it the tag of one", name, strings.Join(tags, " and ")))
			continue
		}
		switch s.d.Status {
		case "new", "archive":
			notes = append(notes, fmt.Sprintf("%s is %s: left out until it is active", name, s.d.Status))
			continue
		}
		f := inventory.Found{Name: s.d.Name, Role: role,
			Source: fmt.Sprintf("digitalocean droplet %d (tag %s)", s.d.ID, roleTag)}
		if c.cfg.Sites != nil {
			slug := ""
			if s.d.Region != nil {
				slug = s.d.Region.Slug
			}
			site, ok := c.cfg.Sites[slug]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s is in region %q, which digitalocean.sites puts in no site", name, slug))
				continue
			}
			f.Site = site
		}
		var bad []string
		f.PublicIP = address(s.d.PublicIPv4, &bad)
		f.PrivateIP = address(s.d.PrivateIPv4, &bad)
		f.PublicIP6 = address(s.d.PublicIPv6, &bad)
		if len(bad) > 0 {
			problems = append(problems, fmt.Sprintf("%s: the API gives %s, which is not an IP address", name, strings.Join(bad, " and ")))
			continue
		}
		found = append(found, f)
	}
	if len(problems) > 0 {
		return nil, nil, &Invalid{Problems: problems}
	}
	slices.SortFunc(found, func(a, b inventory.Found) int { return strings.Compare(a.Name, b.Name) })
	return found, notes, nil
}

// address parses one of a droplet's addresses; "" is none.
func address(get func() (string, error), bad *[]string) netip.Addr {
	s, err := get()
	if err != nil || s == "" {
		return netip.Addr{} // no networks at all: no address
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		*bad = append(*bad, strconv.Quote(s))
	}
	return a
}

// listTag lists every page of the droplets tagged tag, following
// links.pages.next.
func (c *Client) listTag(ctx context.Context, tag string) ([]godo.Droplet, error) {
	var all []godo.Droplet
	opt := &godo.ListOptions{Page: 1, PerPage: PerPage}
	for pages := 1; ; pages++ {
		droplets, resp, err := c.listPage(ctx, tag, opt)
		if err != nil {
			return nil, err
		}
		all = append(all, droplets...)
		if resp.Links == nil || resp.Links.IsLastPage() {
			return all, nil
		}
		next, err := pageOf(resp.Links.Pages.Next)
		switch {
		case err != nil:
			return nil, fmt.Errorf("digitalocean: droplets tagged %s: links.pages.next %q: %w", tag, resp.Links.Pages.Next, err)
		case next <= opt.Page:
			return nil, fmt.Errorf("digitalocean: droplets tagged %s: page %d links back to page %d as the next", tag, opt.Page, next)
		case pages >= MaxPages:
			return nil, fmt.Errorf("digitalocean: droplets tagged %s: more than %d pages", tag, MaxPages)
		}
		opt = &godo.ListOptions{Page: next, PerPage: PerPage}
	}
}

// pageOf reads the page number of a links.pages URL.
func pageOf(link string) (int, error) {
	u, err := url.Parse(link)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(u.Query().Get("page"))
	if err != nil || n < 1 {
		return 0, errors.New("no page number")
	}
	return n, nil
}

// listPage asks for one page, again after the wait the API asks for
// when it rate-limits, at most MaxRetries times.
func (c *Client) listPage(ctx context.Context, tag string, opt *godo.ListOptions) ([]godo.Droplet, *godo.Response, error) {
	for try := 0; ; try++ {
		droplets, resp, err := c.godo.Droplets.ListByTag(ctx, tag, opt)
		if err == nil {
			return droplets, resp, nil
		}
		var er *godo.ErrorResponse
		if !errors.As(err, &er) || er.Response == nil || er.Response.StatusCode != http.StatusTooManyRequests {
			return nil, nil, c.apiError(ctx, tag, err)
		}
		d := c.retryAfter(er.Response.Header)
		switch {
		case try >= MaxRetries:
			return nil, nil, fmt.Errorf("digitalocean: droplets tagged %s: rate-limited (429) %d times in a row: try again later", tag, try+1)
		case d > MaxRetryWait:
			return nil, nil, fmt.Errorf("digitalocean: droplets tagged %s: rate-limited (429) for %s, longer than fwpush waits (%s): try again later", tag, d, MaxRetryWait)
		}
		if err := c.wait(ctx, d); err != nil {
			return nil, nil, err
		}
	}
}

// retryAfter is the wait a 429 asks for: Retry-After, in seconds or as a
// date, else the time left until RateLimit-Reset, else a short default.
func (c *Client) retryAfter(h http.Header) time.Duration {
	if v := h.Get("Retry-After"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(c.now()))
		}
	}
	if v := h.Get("Ratelimit-Reset"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(0, time.Unix(n, 0).Sub(c.now()))
		}
	}
	return defaultRetryWait
}

// apiError says in one line why a request failed: the API's status and
// message, or what happened on the way.
func (c *Client) apiError(ctx context.Context, tag string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		code := er.Response.StatusCode
		msg := fmt.Sprintf("%d %s", code, http.StatusText(code))
		if m := strings.TrimSpace(er.Message); m != "" {
			msg += ": " + oneLine(m)
		}
		if code == http.StatusUnauthorized || code == http.StatusForbidden {
			msg += fmt.Sprintf(" (the token in $%s)", c.cfg.TokenEnv)
		}
		return fmt.Errorf("digitalocean: droplets tagged %s: %s", tag, msg)
	}
	return fmt.Errorf("digitalocean: droplets tagged %s: %s", tag, oneLine(err.Error()))
}

// oneLine keeps a message from the API or the network on one line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
