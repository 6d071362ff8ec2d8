package remote

import (
	"testing"

	"github.com/fwpush/fwpush/internal/testenv"
)

// TestMain says, under go test -short, how many tests were left out.
func TestMain(m *testing.M) { testenv.Main(m) }
