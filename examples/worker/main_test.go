package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mongotenant/mongotenant/examples/internal/example"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWorker(t *testing.T) {
	uri := mongotest.URI(t)
	want := []string{
		`(?m)^queued   189 jobs for 50 tenants; 8 workers, one shared client \(pool 4\), 1 lease per tenant$`,
	}
	for row := 0; row < tenants; row += 10 {
		var counts []string
		for i := row; i < row+10; i++ {
			counts = append(counts, fmt.Sprintf("tenant-%02d=%d", i, jobsFor(i)))
		}
		want = append(want, `(?m)^done     `+strings.Join(counts, " ")+`$`)
	}
	want = append(want,
		`(?m)^done     every tenant's jobs all done, none left: true$`,
		`(?m)^claims   189, any job claimed twice: false, every tenant's in queue order: true$`,
		`(?m)^bulkhead most leases one tenant held at once: 1$`,
		`(?m)^stats    clients=1 created=1 tenants=50 leases=0, tenant-00 shares its client with 49 others$`,
	)
	example.Check(t, run, uri, want)
}
