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
	root := newRoot(cfg)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetContext(ctx)
	err := root.Execute()
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, errUsage), errors.Is(err, mongotenant.ErrInvalidTenant), isCobraUsage(err):
		fmt.Fprintln(stderr, "mongotenant:", strings.TrimPrefix(err.Error(), "usage: "))
		fmt.Fprintln(stderr, "Run 'mongotenant --help' for usage.")
		return ExitUsage
	default:
		fmt.Fprintln(stderr, "mongotenant:", err)
		return ExitFailure
	}
}

// isCobraUsage reports whether err is cobra's own usage error: an unknown
// command or flag, or the wrong number of arguments.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, s := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "flag needs an argument", "invalid argument"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// flags are the root's persistent flags.
type flags struct {
	uri     string
	catalog string
	json    bool
	timeout time.Duration
}

func newRoot(cfg Config) *cobra.Command {
	f := &flags{}
	root := &cobra.Command{
		Use:           "mongotenant",
		Short:         "Operate a mongotenant deployment: tenants, migrations, capacity, stats",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&f.uri, "uri", os.Getenv("MONGODB_URI"), "the deployment's URI (default $MONGODB_URI)")
	pf.StringVar(&f.catalog, "catalog", "platform.tenants", "the catalog's database.collection")
	pf.BoolVar(&f.json, "json", false, "print JSON instead of tables")
	pf.DurationVar(&f.timeout, "timeout", 5*time.Minute, "give up after this long")
	root.AddCommand(tenantsCmd(f, cfg), migrateCmd(f, cfg), planCmd(f), statsCmd(f))
	return root
}

// env is what a command that talks to the deployment gets.
type env struct {
	raw *mongo.Client
	cat *catalog.Catalog
	m   *mongotenant.Manager
	mg  *migrate.Migrator
}

// connect opens the deployment: a plain client for the catalog, and a
// Manager routed by it. close must be called.
func (f *flags) connect(cfg Config) (e *env, closeAll func(), err error) {
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
	cat, err := catalog.New(raw.Database(dbName).Collection(collName), catalog.WithNegativeCache(0, 0))
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
	return &env{raw: raw, cat: cat, m: m, mg: mg}, closeAll, nil
}

// withTimeout bounds a command by --timeout.
func (f *flags) withTimeout(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), f.timeout)
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// lifecycleFor returns the lifecycle of e, reporting steps on stderr
// unless JSON is asked for.
func (f *flags) lifecycleFor(cmd *cobra.Command, e *env) (*lifecycle.Lifecycle, error) {
	var opts []lifecycle.Option
	if !f.json {
		opts = append(opts, lifecycle.WithProgress(func(id, step string) {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", id, step)
		}))
	}
	return lifecycle.New(e.m, e.cat, e.mg, opts...)
}
