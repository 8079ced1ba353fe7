// Command mongotenant is the operator's tool for a mongotenant deployment:
// it lists, provisions, suspends, resumes and drops tenants in the
// catalog, shows and applies migrations, plans capacity, and reads a
// running service's stats.
//
//	go install ./cmd/mongotenant   # from a clone
//	mongotenant --help
//
// It runs no migrations of its own: an application embeds the package
// github.com/mongotenant/mongotenant/cmd/mongotenant/cli with its
// migrations to build a binary whose "migrate up" applies them.
package main

import (
	"context"
	"os"
	"os/signal"

	"github.com/mongotenant/mongotenant/cmd/mongotenant/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.Config{})
	stop()
	os.Exit(code)
}
