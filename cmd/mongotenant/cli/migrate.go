package cli

import (
	"context"
	"fmt"
	"sync"
	"text/tabwriter"

	"github.com/mongotenant/mongotenant"
	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/migrate"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

func migrateCmd(f *flags, cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "migrate",
		Short: "Show and apply the schema migrations of every tenant",
	})
	cmd.AddCommand(migrateStatus(f, cfg), migrateUp(f, cfg))
	return cmd
}

// statusRow is one tenant in "migrate status".
type statusRow struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Version int    `json:"version"`
	Latest  int    `json:"latest"`
	Pending int    `json:"pending"`
	Error   string `json:"error,omitempty"`
}

func migrateStatus(f *flags, cfg Config) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show each active tenant's schema version against the latest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				var listErr error
				ids := e.cat.IDs(ctx, &listErr, catalog.Active)
				var mu sync.Mutex // guards rows
				rows := map[string]*statusRow{}
				results := e.m.ForEach(ctx, ids, func(ctx context.Context, id string, db *mongo.Database) error {
					v, err := e.mg.Version(ctx, db)
					mu.Lock()
					rows[id] = &statusRow{ID: id, State: string(catalog.Active), Version: v, Latest: e.mg.Latest(), Pending: pending(e.mg, v)}
					mu.Unlock()
					return err
				}, mongotenant.ForEachOptions{Parallelism: 8})
				if listErr != nil {
					return listErr
				}
				out := make([]statusRow, 0, len(results))
				failed := 0
				for _, r := range results {
					row := rows[r.TenantID]
					if row == nil {
						row = &statusRow{ID: r.TenantID, State: string(catalog.Active), Latest: e.mg.Latest()}
					}
					if r.Err != nil {
						row.Error = r.Err.Error()
						failed++
					}
					out = append(out, *row)
				}
				if f.json {
					if err := printJSON(cmd.OutOrStdout(), out); err != nil {
						return err
					}
				} else {
					w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
					fmt.Fprintln(w, "ID\tVERSION\tLATEST\tPENDING\tERROR")
					for _, r := range out {
						fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", r.ID, r.Version, r.Latest, r.Pending, dash(r.Error))
					}
					if err := w.Flush(); err != nil {
						return err
					}
				}
				if failed > 0 {
					return fmt.Errorf("%d tenants could not be read", failed)
				}
				return nil
			})
		},
	}
}

// pending counts the migrations above version v.
func pending(mg *migrate.Migrator, v int) int {
	n := 0
	for _, m := range mg.Migrations() {
		if m.Version > v {
			n++
		}
	}
	return n
}

func migrateUp(f *flags, cfg Config) *cobra.Command {
	var parallelism int
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring every active tenant's database to the latest schema version",
		Long: "Bring every active tenant's database to the latest schema version, --parallelism at a time.\n" +
			"Safe with other runs and app instances at once; a tenant's failure does not stop the others.\n" +
			"Exits 1 if any tenant failed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cfg.Migrations) == 0 {
				return usagef("this binary has no migrations: build one with the cli package and your migrations")
			}
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				total, err := countActive(ctx, e.cat)
				if err != nil {
					return err
				}
				var bar *progressbar.ProgressBar
				if !f.json {
					bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
						progressbar.OptionSetDescription("migrating"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
				}
				var listErr error
				report := e.mg.UpAll(ctx, e.m, e.cat.IDs(ctx, &listErr, catalog.Active), parallelism, func(p migrate.Progress) {
					if bar != nil {
						_ = bar.Add(1)
					}
					if p.Last.Err == nil {
						_ = e.cat.SetSchemaVersion(ctx, p.Last.TenantID, p.Last.To)
					}
				})
				if bar != nil {
					_ = bar.Finish()
				}
				if listErr != nil {
					return listErr
				}
				if err := printReport(cmd, f, report); err != nil {
					return err
				}
				if report.Failed > 0 {
					return fmt.Errorf("%d of %d tenants failed", report.Failed, len(report.Tenants))
				}
				return nil
			})
		},
	}
	cmd.Flags().IntVar(&parallelism, "parallelism", 8, "tenants migrated at once")
	return cmd
}

func countActive(ctx context.Context, cat *catalog.Catalog) (int, error) {
	var err error
	n := 0
	for range cat.IDs(ctx, &err, catalog.Active) {
		n++
	}
	return n, err
}

// reportRow is one tenant in "migrate up".
type reportRow struct {
	ID      string `json:"id"`
	From    int    `json:"from"`
	To      int    `json:"to"`
	Applied []int  `json:"applied"`
	Error   string `json:"error,omitempty"`
}

func printReport(cmd *cobra.Command, f *flags, r migrate.Report) error {
	rows := make([]reportRow, 0, len(r.Tenants))
	for _, t := range r.Tenants {
		row := reportRow{ID: t.TenantID, From: t.From, To: t.To, Applied: t.Applied}
		if row.Applied == nil {
			row.Applied = []int{}
		}
		if t.Err != nil {
			row.Error = t.Err.Error()
		}
		rows = append(rows, row)
	}
	if f.json {
		return printJSON(cmd.OutOrStdout(), map[string]any{
			"tenants": rows, "migrated": r.Migrated, "current": r.Current, "failed": r.Failed,
		})
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tFROM\tTO\tAPPLIED\tERROR")
	for _, row := range rows {
		if len(row.Applied) == 0 && row.Error == "" {
			continue // current: counted below
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%v\t%s\n", row.ID, row.From, row.To, row.Applied, dash(row.Error))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%d migrated, %d already current, %d failed\n", r.Migrated, r.Current, r.Failed)
	return nil
}
