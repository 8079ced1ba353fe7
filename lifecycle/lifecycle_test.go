package lifecycle_test

import (
	"testing"

	"github.com/mongotenant/mongotenant/lifecycle"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestNewNeedsAManagerAndACatalog: the rest is tested against a server in
// the integration module.
func TestNewNeedsAManagerAndACatalog(t *testing.T) {
	if _, err := lifecycle.New(nil, nil, nil); err == nil {
		t.Error("New accepted a nil Manager and Catalog")
	}
}
