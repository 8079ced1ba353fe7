// Package example runs an example program against a server: MONGODB_URI if
// set, otherwise an embedded one (see package mongotest).
package example

import (
	"context"
	"fmt"
	"io"
	"os"
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
