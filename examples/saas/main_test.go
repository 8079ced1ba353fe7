package main

import (
	"testing"

	"github.com/mongotenant/mongotenant/examples/internal/example"
	"github.com/mongotenant/mongotenant/mongotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSaaS(t *testing.T) {
	uri := mongotest.URI(t)
	want := []string{
		`(?m)^acme      provisioned on the enterprise plan, schema version 2$`,
		`(?m)^globex    provisioned on the premium plan, schema version 2$`,
		`(?m)^initech   provisioned on the basic plan, schema version 2$`,
		`(?m)^umbrella  provisioned on the free plan, schema version 2$`,
		`(?m)^4 companies served 18 requests$`,
		`(?m)^acme      refused a second alice@example\.com: duplicate key$`,
		`(?m)^globex    accepted alice@example\.com, an acme user too$`,
		`(?m)^hooli     refused: unknown tenant$`,
		`(?m)^umbrella  suspended: request refused, client cached=false$`,
		`(?m)^umbrella  resumed: request served$`,
		`(?m)^soylent   offboarded: entry offboarded, databases left 0$`,
		`(?m)^acme      tier=enterprise pool=20 users=3 projects=4 \(alice@example\.com=2 bob@example\.com=1 carol@example\.com=1\)$`,
		`(?m)^globex    tier=premium pool=10 users=2 projects=2 \(hank@example\.com=2\)$`,
		`(?m)^initech   tier=basic pool=5 users=3 projects=3 \(samir@example\.com=2 peter@example\.com=1\)$`,
		`(?m)^umbrella  tier=free pool=3 users=1 projects=2 \(jill@example\.com=2\)$`,
	}
	example.Check(t, run, uri, want)
}
