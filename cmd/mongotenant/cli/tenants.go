package cli

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/mongotenant/mongotenant/catalog"
	"github.com/mongotenant/mongotenant/lifecycle"
	"github.com/spf13/cobra"
)

func tenantsCmd(f *flags, cfg Config) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "tenants",
		Short: "List, create, suspend, resume and drop tenants in the catalog",
	})
	cmd.AddCommand(tenantsList(f, cfg), tenantsCreate(f, cfg),
		tenantsState(f, cfg, "suspend", catalog.Suspended, catalog.Active, catalog.Suspended),
		tenantsState(f, cfg, "resume", catalog.Active, catalog.Suspended, catalog.Active), tenantsDrop(f, cfg))
	return cmd
}

func tenantsList(f *flags, cfg Config) *cobra.Command {
	var state string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the catalog's tenants, by ID",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var states []catalog.State
			if state != "" {
				s := catalog.State(state)
				if !slices.Contains([]catalog.State{catalog.Provisioning, catalog.Active, catalog.Suspended, catalog.Offboarding, catalog.Offboarded}, s) {
					return usagef("unknown state %q", state)
				}
				states = append(states, s)
			}
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				tenants := []catalog.Tenant{}
				for t, err := range e.cat.List(ctx, states...) {
					if err != nil {
						return err
					}
					tenants = append(tenants, t)
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), tenants)
				}
				w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tSTATE\tTIER\tPLACEMENT\tSCHEMA\tCREATED")
				for _, t := range tenants {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", t.ID, t.State, dash(t.Tier), dash(t.Placement), t.SchemaVersion, t.Created.Format(time.RFC3339))
				}
				return w.Flush()
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only tenants in this state (provisioning, active, suspended, offboarding, offboarded)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func tenantsCreate(f *flags, cfg Config) *cobra.Command {
	var tier, placement string
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Provision a tenant: register it, migrate its database, activate it",
		Long: "Provision a tenant: register it in the catalog as provisioning, bring its database to the\n" +
			"latest schema version, and activate it. Safe to run again after an interruption.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				var opts []lifecycle.ProvisionOption
				if tier != "" {
					opts = append(opts, lifecycle.Tier(tier))
				}
				if placement != "" {
					opts = append(opts, lifecycle.Placement(placement))
				}
				t, err := e.lc.Provision(ctx, args[0], opts...)
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), t)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is %s at schema version %d\n", t.ID, t.State, t.SchemaVersion)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&tier, "tier", "", "the tenant's tier")
	cmd.Flags().StringVar(&placement, "placement", "", "the tenant's placement (a name the application maps to a deployment)")
	return cmd
}

// tenantsState moves a tenant to state from one of from.
func tenantsState(f *flags, cfg Config, verb string, state catalog.State, from ...catalog.State) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " ID",
		Short: fmt.Sprintf("Mark a %s tenant %s; app instances see it after their route TTL", from[0], state),
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				if err := checkID(e, args[0]); err != nil {
					return err
				}
				if err := e.cat.SetState(ctx, args[0], state, from...); err != nil {
					return err
				}
				t, err := e.cat.Get(ctx, args[0])
				if err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), t)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is %s\n", t.ID, t.State)
				return nil
			})
		},
	}
}

func tenantsDrop(f *flags, cfg Config) *cobra.Command {
	var confirm, remove bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "drop ID --confirm",
		Short: "Offboard a tenant: suspend, drain, drop its database, tombstone its entry",
		Long: "Offboard a tenant: mark it offboarding, wait --wait for the app instances to stop serving it\n" +
			"(set it to their route TTL), drop its database and tombstone (or --remove) its catalog entry.\n" +
			"Dropping needs --confirm. Safe to run again after an interruption.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !confirm {
				return usagef("drop deletes the tenant's database: add --confirm")
			}
			return f.deployment(cmd, cfg, func(ctx context.Context, e *env) error {
				opts := []lifecycle.OffboardOption{lifecycle.DropDatabase(), lifecycle.WaitForOthers(wait)}
				if remove {
					opts = append(opts, lifecycle.RemoveEntry())
				}
				if err := e.lc.Offboard(ctx, args[0], opts...); err != nil {
					return err
				}
				if f.json {
					return printJSON(cmd.OutOrStdout(), map[string]string{"id": args[0], "state": "offboarded"})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is offboarded\n", args[0])
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&confirm, "confirm", false, "confirm that the tenant's database is to be dropped")
	cmd.Flags().BoolVar(&remove, "remove", false, "delete the catalog entry instead of leaving a tombstone")
	cmd.Flags().DurationVar(&wait, "wait", 0, "wait this long after suspending, for other app instances (their route TTL)")
	return cmd
}
