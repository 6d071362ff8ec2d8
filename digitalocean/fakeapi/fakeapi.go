// Package fakeapi is a stand-in for DigitalOcean's API, for tests and the
// lab: it serves GET /v2/droplets as the API documents it — filtered by
// tag_name, paged with page and per_page and links.pages.next, a 401 with
// the API's JSON error body for a missing or wrong token, and 429 with
// Retry-After when told to. Its JSON is written here from the API's
// documentation, not with godo's types, so that tests of the client read
// what the real API sends.
package fakeapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fwpush/fwpush/inventory"
)

// Droplet is one droplet as the fake API serves it.
type Droplet struct {
	ID     int
	Name   string
	Tags   []string
	Region string // slug, such as "nyc1"; "" serves "nyc1"
	Status string // "" serves "active"
	// Addresses, "" for none.
	PublicIP, PrivateIP, PublicIP6 string
}

// Server serves the droplets it holds. Its methods may be called while it
// serves.
type Server struct {
	// Token is the bearer token it accepts; "" accepts any that is not
	// empty.
	Token string
	// PerPage caps the droplets of a page, whatever per_page asks; 0 is
	// the API's own cap, 200.
	PerPage int
	// Load, when set, gives the droplets afresh for every request, in
	// place of those the server holds; its error is a 500.
	Load func() ([]Droplet, error)

	mu       sync.Mutex
	droplets []Droplet
	limited  []string
	requests []string
}

// New returns a server holding droplets.
func New(droplets ...Droplet) *Server { return &Server{droplets: droplets} }

// Add adds a droplet, as creating one does.
func (s *Server) Add(d Droplet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.droplets = append(s.droplets, d)
}

// Remove removes the droplet named name, as destroying it does.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.droplets = slices.DeleteFunc(s.droplets, func(d Droplet) bool { return d.Name == name })
}

// RateLimit answers the next requests, one each, 429 with these
// Retry-After values ("" sends none).
func (s *Server) RateLimit(retryAfter ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limited = append(s.limited, retryAfter...)
}

// Requests returns the request URIs it has been sent, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// The API's JSON, as documented for GET /v2/droplets.
type (
	page struct {
		Droplets []droplet `json:"droplets"`
		Links    links     `json:"links"`
		Meta     meta      `json:"meta"`
	}
	droplet struct {
		ID        int      `json:"id"`
		Name      string   `json:"name"`
		Memory    int      `json:"memory"`
		VCPUs     int      `json:"vcpus"`
		Disk      int      `json:"disk"`
		Locked    bool     `json:"locked"`
		Status    string   `json:"status"`
		CreatedAt string   `json:"created_at"`
		Features  []string `json:"features"`
		Networks  networks `json:"networks"`
		Region    region   `json:"region"`
		Tags      []string `json:"tags"`
		VPCUUID   string   `json:"vpc_uuid"`
	}
	networks struct {
		V4 []network4 `json:"v4"`
		V6 []network6 `json:"v6"`
	}
	network4 struct {
		IPAddress string `json:"ip_address"`
		Netmask   string `json:"netmask"`
		Gateway   string `json:"gateway"`
		Type      string `json:"type"`
	}
	network6 struct {
		IPAddress string `json:"ip_address"`
		Netmask   int    `json:"netmask"`
		Gateway   string `json:"gateway"`
		Type      string `json:"type"`
	}
	region struct {
		Name      string `json:"name"`
		Slug      string `json:"slug"`
		Available bool   `json:"available"`
	}
	links struct {
		Pages *pages `json:"pages,omitempty"`
	}
	pages struct {
		First string `json:"first,omitempty"`
		Prev  string `json:"prev,omitempty"`
		Next  string `json:"next,omitempty"`
		Last  string `json:"last,omitempty"`
	}
	meta struct {
		Total int `json:"total"`
	}
	apiError struct {
		ID      string `json:"id"`
		Message string `json:"message"`
	}
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.URL.RequestURI())
	var limited *string
	if len(s.limited) > 0 {
		limited = &s.limited[0]
		s.limited = s.limited[1:]
	}
	all := slices.Clone(s.droplets)
	s.mu.Unlock()

	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || token == "" || s.Token != "" && token != s.Token:
		writeJSON(w, http.StatusUnauthorized, apiError{"unauthorized", "Unable to authenticate you"})
		return
	case limited != nil:
		w.Header().Set("Ratelimit-Limit", "5000")
		w.Header().Set("Ratelimit-Remaining", "0")
		if *limited != "" {
			w.Header().Set("Retry-After", *limited)
		}
		writeJSON(w, http.StatusTooManyRequests, apiError{"too_many_requests", "API Rate limit exceeded."})
		return
	case r.URL.Path != "/v2/droplets":
		writeJSON(w, http.StatusNotFound, apiError{"not_found", "The resource you were accessing could not be found."})
		return
	case r.Method != http.MethodGet:
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"method_not_allowed", "This fake serves GET only."})
		return
	}
	if s.Load != nil {
		var err error
		if all, err = s.Load(); err != nil {
			writeJSON(w, http.StatusInternalServerError, apiError{"server_error", err.Error()})
			return
		}
	}

	q := r.URL.Query()
	if tag := q.Get("tag_name"); tag != "" {
		all = slices.DeleteFunc(all, func(d Droplet) bool { return !slices.Contains(d.Tags, tag) })
	}
	per := 20
	if n, err := strconv.Atoi(q.Get("per_page")); err == nil && n > 0 {
		per = n
	}
	per = min(per, 200)
	if s.PerPage > 0 {
		per = min(per, s.PerPage)
	}
	num := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 0 {
		num = n
	}
	last := max(1, (len(all)+per-1)/per)
	out := page{Droplets: []droplet{}, Meta: meta{Total: len(all)}}
	for i := (num - 1) * per; i < min(num*per, len(all)); i++ {
		out.Droplets = append(out.Droplets, render(all[i]))
	}
	if last > 1 {
		link := func(n int) string {
			u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path}
			v := url.Values{}
			for k, vs := range q {
				v[k] = vs
			}
			v.Set("page", strconv.Itoa(n))
			v.Set("per_page", strconv.Itoa(per))
			u.RawQuery = v.Encode()
			return u.String()
		}
		p := &pages{}
		if num > 1 {
			p.First, p.Prev = link(1), link(num-1)
		}
		if num < last {
			p.Next, p.Last = link(num+1), link(last)
		}
		out.Links.Pages = p
	}
	writeJSON(w, http.StatusOK, out)
}

func render(d Droplet) droplet {
	out := droplet{ID: d.ID, Name: d.Name, Memory: 1024, VCPUs: 1, Disk: 25, Status: d.Status,
		CreatedAt: "2024-01-02T03:04:05Z", Features: []string{"private_networking"},
		Tags: d.Tags, Region: region{Name: d.Region, Slug: d.Region, Available: true},
		VPCUUID: "5a4981aa-9653-4bd1-bef5-d6bff52042e4"}
	if out.Status == "" {
		out.Status = "active"
	}
	if out.Region.Slug == "" {
		out.Region = region{Name: "New York 1", Slug: "nyc1", Available: true}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if d.PrivateIP != "" {
		out.Networks.V4 = append(out.Networks.V4, network4{d.PrivateIP, "255.255.0.0", "", "private"})
	}
	if d.PublicIP != "" {
		out.Networks.V4 = append(out.Networks.V4, network4{d.PublicIP, "255.255.255.0", "203.0.113.1", "public"})
	}
	if d.PublicIP6 != "" {
		out.Networks.V6 = append(out.Networks.V6, network6{d.PublicIP6, 64, "2001:db8::1", "public"})
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// FromInventory returns the droplets of a static inventory's hosts, each
// tagged with its role's name and in the region named as its site (nyc1
// without sites), numbered from first in name order.
func FromInventory(inv *inventory.Inventory, first int) []Droplet {
	var out []Droplet
	for i, h := range inv.Hosts {
		d := Droplet{ID: first + i, Name: h.Name, Tags: []string{h.Role}, Region: h.Site}
		if h.PublicIP.IsValid() {
			d.PublicIP = h.PublicIP.String()
		}
		if h.PrivateIP.IsValid() {
			d.PrivateIP = h.PrivateIP.String()
		}
		if h.PublicIP6.IsValid() {
			d.PublicIP6 = h.PublicIP6.String()
		}
		out = append(out, d)
	}
	return out
}
