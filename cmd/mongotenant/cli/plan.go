package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/mongotenant/mongotenant"
	"github.com/spf13/cobra"
)

func planCmd(f *flags) *cobra.Command {
	var in mongotenant.PlanInput
	cmd := &cobra.Command{
		Use:   "plan --server-max-connections N --active-tenants N",
		Short: "Recommend a strategy, pool size and client cap for a connection limit",
		Long: "Recommend a strategy, pool size and client cap that keep every server node under its\n" +
			"connection limit (mongotenant.PlanCapacity), and show the socket arithmetic. No server is needed.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in.ServerMaxConnections <= 0 || in.ActiveTenants <= 0 {
				return usagef("plan needs --server-max-connections and --active-tenants")
			}
			p, err := mongotenant.PlanCapacity(in)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), p)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "strategy\t%s\n", p.Strategy)
			if p.Groups > 0 {
				fmt.Fprintf(w, "groups per instance\t%d\n", p.Groups)
			}
			fmt.Fprintf(w, "pool size\t%d\n", p.PoolSize)
			fmt.Fprintf(w, "max clients per instance\t%d\n", p.MaxClients)
			fmt.Fprintf(w, "peak connections on the busiest node\t%d of %d\n", p.PeakConnections, p.Budget)
			if err := w.Flush(); err != nil {
				return err
			}
			for _, n := range p.Notes {
				fmt.Fprintf(cmd.OutOrStdout(), "- %s\n", n)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&in.ServerMaxConnections, "server-max-connections", 0, "connection limit of one server node (Atlas M10: 1500)")
	fl.IntVar(&in.ReservedConnections, "reserved", 0, "connections kept free on every node for other clients")
	fl.IntVar(&in.AppInstances, "app-instances", 1, "processes, each with its own Manager")
	fl.IntVar(&in.Nodes, "nodes", 1, "data-bearing members of the replica set")
	fl.StringVar(&in.MonitoringMode, "monitoring-mode", "poll", "the driver's serverMonitoringMode: poll, stream or auto")
	fl.IntVar(&in.ActiveTenants, "active-tenants", 0, "tenants with traffic at the same time, across all instances")
	fl.IntVar(&in.PeakConcurrency, "peak-concurrency", 5, "concurrent operations of one tenant at peak")
	return cmd
}
