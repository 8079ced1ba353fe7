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
		`(?m)^acme      onboarded on the enterprise plan$`,
		`(?m)^globex    onboarded on the premium plan$`,
		`(?m)^initech   onboarded on the basic plan$`,
		`(?m)^umbrella  onboarded on the free plan$`,
		`(?m)^onboarding ran 4 times for 4 companies in 18 requests$`,
		`(?m)^acme      refused a second alice@example\.com: duplicate key$`,
		`(?m)^globex    accepted alice@example\.com, an acme user too$`,
		`(?m)^hooli     refused: no billing plan$`,
		`(?m)^acme      tier=enterprise pool=20 users=3 projects=4 \(alice@example\.com=2 bob@example\.com=1 carol@example\.com=1\)$`,
		`(?m)^globex    tier=premium pool=10 users=2 projects=2 \(hank@example\.com=2\)$`,
		`(?m)^initech   tier=basic pool=5 users=3 projects=3 \(samir@example\.com=2 peter@example\.com=1\)$`,
		`(?m)^umbrella  tier=free pool=3 users=1 projects=1 \(jill@example\.com=1\)$`,
	}
	example.Check(t, run, uri, want)
}
