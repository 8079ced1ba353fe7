package main

import (
	"testing"

	"github.com/mongotenant/mongotenant/examples/internal/example"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestQuickstart(t *testing.T) {
	example.Check(t, run, mongotest.URI(t), []string{
		`(?m)^alice  2 posts in user_alice_db$`,
		`(?m)^bob    1 posts in user_bob_db$`,
		`(?m)^carol  3 posts in user_carol_db$`,
		`(?m)^alice  found "Hello from Alice" after her client was evicted$`,
		`(?m)^stats  clients=2/2 created=2 recycled=2 hits=0 misses=4 evicted\(lru\)=2 leases=0$`,
		`(?m)^carol  pool size 5, [1-9][0-9]* connection check-outs$`,
	})
}
