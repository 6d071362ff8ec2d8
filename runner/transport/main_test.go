package transport

import (
	"testing"

	"github.com/fwpush/fwpush/internal/testenv"
)

// TestMain isolates the tests from the account that runs them: among the
// rest, the developer's own ssh-agent (SSH_AUTH_SOCK) is left out once for
// all of them, so that newFleet need not set it, which would keep its
// tests from running in parallel. A test that wants an agent starts one and
// names it itself.
func TestMain(m *testing.M) { testenv.Main(m) }
