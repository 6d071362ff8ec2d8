package english

import "testing"

func TestCount(t *testing.T) {
	tests := []struct {
		n    int
		one  string
		many []string
		want string
	}{
		{0, "host", nil, "0 hosts"},
		{1, "host", nil, "1 host"},
		{2, "user chain", nil, "2 user chains"},
		{1, "mismatch", []string{"mismatches"}, "1 mismatch"},
		{3, "mismatch", []string{"mismatches"}, "3 mismatches"},
	}
	for _, tt := range tests {
		if got := Count(tt.n, tt.one, tt.many...); got != tt.want {
			t.Errorf("Count(%d, %q, %q) = %q, want %q", tt.n, tt.one, tt.many, got, tt.want)
		}
	}
}
