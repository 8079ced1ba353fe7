package main

import (
	"testing"

	"github.com/mongotenant/mongotenant/examples/internal/example"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBlog(t *testing.T) {
	uri := mongotest.URI(t)
	want := []string{
		`(?m)^alice  page 1: post-07 post-06 post-05$`,
		`(?m)^alice  page 2: post-04 post-03 post-02$`,
		`(?m)^alice  page 3: post-01$`,
		`(?m)^alice  7 posts, 28 views, top tag "go" \(7 posts\)$`,
		`(?m)^bob    3 posts, 6 views, top tag "mongodb" \(3 posts\)$`,
		`(?m)^carol  5 posts, 15 views, top tag "ops" \(5 posts\)$`,
		`(?m)^dave   4 posts, 10 views, top tag "go" \(4 posts\)$`,
		`(?m)^stats  clients=2/2 leases=0$`,
		`(?m)^stats  created\+recycled=clients\+evicted: true, evicted\(lru\)>=2: true$`,
	}
	example.Check(t, run, uri, want)
}
