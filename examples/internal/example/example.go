// Package example runs an example program against a server: MONGODB_URI if
// set, otherwise an embedded one (see package mongotest).
package example

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/mongotenant/mongotenant/mongotest"
)

// Main starts the server, calls run with its URI and stdout, stops the
// server, and exits non-zero if anything failed.
func Main(run func(ctx context.Context, w io.Writer, uri string) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	err := func() error {
		srv, err := mongotest.Start(ctx)
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Fprintf(os.Stderr, "server: %s backend\n", srv.Backend())
		return run(ctx, os.Stdout, srv.URI())
	}()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Check runs run twice against uri, the second time over the first run's
// data as on a shared server, and fails t unless each output matches every
// pattern in want and has exactly one line per pattern.
func Check(t testing.TB, run func(ctx context.Context, w io.Writer, uri string) error, uri string, want []string) {
	t.Helper()
	for range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), &out, uri); err != nil {
			t.Fatal(err)
		}
		for _, re := range want {
			if !regexp.MustCompile(re).Match(out.Bytes()) {
				t.Errorf("output lacks %s:\n%s", re, out.String())
			}
		}
		if n := bytes.Count(out.Bytes(), []byte("\n")); n != len(want) {
			t.Errorf("output has %d lines, want %d:\n%s", n, len(want), out.String())
		}
	}
}
