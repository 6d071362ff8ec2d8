package fakeapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func get(t *testing.T, s *Server, target, token string) (int, http.Header, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var doc map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", target, err, w.Body)
	}
	return w.Code, w.Header(), doc
}

// The fake speaks the API's documented JSON: the error body, the droplet's
// networks, links.pages, meta.total.
func TestServesTheDocumentedJSON(t *testing.T) {
	s := New(
		Droplet{ID: 1, Name: "a", Tags: []string{"app"}, PublicIP: "203.0.113.1", PrivateIP: "198.18.0.1", PublicIP6: "2001:db8::1"},
		Droplet{ID: 2, Name: "b", Tags: []string{"app"}, PrivateIP: "198.18.0.2"},
		Droplet{ID: 3, Name: "c", Tags: []string{"db"}, PrivateIP: "198.18.0.3"},
	)
	s.Token = "good"
	code, _, doc := get(t, s, "/v2/droplets", "bad")
	if want := map[string]any{"id": "unauthorized", "message": "Unable to authenticate you"}; code != 401 || !cmp.Equal(want, doc) {
		t.Errorf("wrong token: %d %v", code, doc)
	}

	code, _, doc = get(t, s, "/v2/droplets?tag_name=app&per_page=1", "good")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	d := doc["droplets"].([]any)[0].(map[string]any)
	nets := d["networks"].(map[string]any)
	wantV4 := []any{
		map[string]any{"ip_address": "198.18.0.1", "netmask": "255.255.0.0", "gateway": "", "type": "private"},
		map[string]any{"ip_address": "203.0.113.1", "netmask": "255.255.255.0", "gateway": "203.0.113.1", "type": "public"},
	}
	if d["name"] != "a" || !cmp.Equal(wantV4, nets["v4"]) || nets["v6"].([]any)[0].(map[string]any)["type"] != "public" {
		t.Errorf("droplet a: %v", d)
	}
	pages := doc["links"].(map[string]any)["pages"].(map[string]any)
	if pages["next"] != "http://example.com/v2/droplets?page=2&per_page=1&tag_name=app" || doc["meta"].(map[string]any)["total"] != 2.0 {
		t.Errorf("links %v, meta %v", pages, doc["meta"])
	}

	s.RateLimit("7")
	code, h, doc := get(t, s, "/v2/droplets", "good")
	if code != 429 || h.Get("Retry-After") != "7" || doc["id"] != "too_many_requests" {
		t.Errorf("rate-limited: %d %v %v", code, h, doc)
	}

	s.Load = func() ([]Droplet, error) { return nil, errors.New("droplets.toml: broken") }
	if code, _, doc = get(t, s, "/v2/droplets", "good"); code != 500 || doc["message"] != "droplets.toml: broken" {
		t.Errorf("Load failing: %d %v", code, doc)
	}
}
