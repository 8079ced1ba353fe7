package main

import (
	"bytes"
	"context"
	"regexp"
	"testing"

	"github.com/mongotenant/mongotenant/mongotest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTransactions checks whichever path the server allows: the transfer
// on a replica set, or the explained skip on a standalone or embedded
// server (the embedded FerretDB has no transactions, so CI exercises the
// detection and the skip).
func TestTransactions(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out, mongotest.URI(t)); err != nil {
		t.Fatal(err)
	}
	transfer := regexp.MustCompile(`(?m)^ops      credit 60\nresearch credit 40$`)
	skipped := regexp.MustCompile(`(?m)^skipped: the server is not a replica set`)
	if !transfer.Match(out.Bytes()) && !skipped.Match(out.Bytes()) {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
	t.Logf("%s", out.String())
}
