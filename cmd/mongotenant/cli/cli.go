// Package cli is the mongotenant command line. An application builds its
// own binary with its migrations:
//
//	func main() {
//		code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr, cli.Config{Migrations: app.Migrations})
//		os.Exit(code)
//	}
//
// Exit codes: 0 success, 1 the operation failed (a server that cannot be
// reached, a tenant that failed to migrate, an unknown tenant), 2 a usage
// error (an unknown command or flag, a missing argument or confirmation,
// an invalid tenant ID).
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/lifecycle"
	"github.com/mongotenant/mongotenant/migrate"
	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Config is what an application gives its binary.
type Config struct {
	// Migrations are applied by "migrate up" and shown by "migrate
	// status". Without them, "migrate up" is a usage error.
	Migrations []migrate.Migration

	// Tiers sizes tenants by tier; nil means mongotenant.DefaultTiers().
	Tiers map[string]mongotenant.Tier

	// DatabaseName maps tenant IDs to databases, as the application's
	// Manager does; nil means the default, user_<id>_db.
	DatabaseName func(tenantID string) string

	// Placements maps the catalog's placement names to deployment URIs, as
	// the application's catalog.WithPlacements does.
	Placements map[string]string
}

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// errUsage marks usage errors: exit code 2.
var errUsage = errors.New("usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// Run runs the command line args and returns the exit code. Output goes
// to stdout, errors and progress to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, cfg Config) int {
	f := &flags{}
	root := newRoot(f, cfg)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	err := root.Execute()
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUsage), errors.Is(err, mongotenant.ErrInvalidTenant), !f.started:
		// cobra's own errors (an unknown command or flag, a wrong number
		// of arguments) come before any command starts.
		fmt.Fprintln(stderr, "mongotenant:", strings.TrimPrefix(err.Error(), "usage: "))
		fmt.Fprintln(stderr, "Run 'mongotenant --help' for usage.")
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "mongotenant:", err)
		return ExitFailure
	}
}

// flags are the root's persistent flags.
type flags struct {
	uri     string
	catalog string
	json    bool
	timeout time.Duration
	started bool // a command began to run: its errors are not cobra's usage errors
}

func newRoot(f *flags, cfg Config) *cobra.Command {
	root := &cobra.Command{
		Use:           "mongotenant",
		Short:         "Operate a mongotenant deployment: tenants, migrations, capacity, stats",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			f.started = true // after cobra parsed flags and checked arguments
		},
	}
	pf := root.PersistentFlags()
	// Environment defaults are read when a command runs, not shown as flag
	// defaults: --help must not print a URI's password.
	pf.StringVar(&f.uri, "uri", "", "the deployment's URI (default $MONGODB_URI)")
	pf.StringVar(&f.catalog, "catalog", "platform.tenants", "the catalog's database.collection")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of tables")
	pf.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
	root.AddCommand(tenantsCmd(f, cfg), migrateCmd(f, cfg), planCmd(f), statsCmd(f))
	return root
}

// group is a command that only holds subcommands: run alone, or with an
// unknown subcommand, it is a usage error (cobra would print help and
// exit 0).
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return usagef("%s needs a subcommand", cmd.CommandPath())
	}
	return cmd
}

// checkID refuses a tenant ID the Manager would refuse, before any I/O.
func checkID(e *env, id string) error {
	_, err := e.m.DatabaseName(id)
	return err
}

// env is what a command that talks to the deployment gets.
type env struct {
	raw *mongo.Client
	cat *catalog.Catalog
	m   *mongotenant.Manager
	mg  *migrate.Migrator
	lc  *lifecycle.Lifecycle
}

// deployment connects, runs fn with a ctx bounded by --timeout, and
// disconnects.
func (f *flags) deployment(cmd *cobra.Command, cfg Config, fn func(ctx context.Context, e *env) error) error {
	e, closeAll, err := f.connect(cmd, cfg)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	return fn(ctx, e)
}

// connect opens the deployment: a plain client for the catalog, and a
// Manager routed by it. close must be called.
func (f *flags) connect(cmd *cobra.Command, cfg Config) (e *env, closeAll func(), err error) {
	if f.uri == "" {
		f.uri = os.Getenv("MONGODB_URI")
	}
	if f.uri == "" {
		return nil, nil, usagef("no deployment: set --uri or MONGODB_URI")
	}
	dbName, collName, ok := strings.Cut(f.catalog, ".")
	if !ok || dbName == "" || collName == "" {
		return nil, nil, usagef("--catalog must be database.collection")
	}
	mg, err := migrate.New(cfg.Migrations)
	if err != nil {
		return nil, nil, err
	}
	raw, err := mongo.Connect(options.Client().ApplyURI(f.uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		return nil, nil, usagef("the URI does not parse")
	}
	cat, err := catalog.New(raw.Database(dbName).Collection(collName), catalog.WithNegativeCache(0, 0),
		catalog.WithPlacements(cfg.Placements))
	if err != nil {
		_ = raw.Disconnect(context.Background())
		return nil, nil, err
	}
	// One shared client per deployment: an operator's tool works on many
	// tenants once each, so per-tenant clients would only cost handshakes.
	// No init hook: "migrate status" must not migrate; Provision and
	// "migrate up" run the migrations themselves.
	opts := []mongotenant.Option{mongotenant.WithRouter(cat.Router(cfg.Tiers)), mongotenant.WithStrategy(mongotenant.Shared())}
	if cfg.DatabaseName != nil {
		opts = append(opts, mongotenant.WithDatabaseName(cfg.DatabaseName))
	}
	m, err := mongotenant.New(f.uri, opts...)
	if err != nil {
		_ = raw.Disconnect(context.Background())
		return nil, nil, err
	}
	closeAll = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = m.Close(ctx)
		_ = raw.Disconnect(ctx)
	}
	var lcOpts []lifecycle.Option
	if !f.json { // steps go to stderr; stdout stays the result
		lcOpts = append(lcOpts, lifecycle.WithProgress(func(id, step string) {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", id, step)
		}))
	}
	lc, err := lifecycle.New(m, cat, mg, lcOpts...)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return &env{raw: raw, cat: cat, m: m, mg: mg, lc: lc}, closeAll, nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
