package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func statsCmd(f *flags) *cobra.Command {
	var adminURL, token string
	cmd := &cobra.Command{
		Use:   "stats --admin-url URL",
		Short: "Show a running service's Manager stats, from its tenanthttp admin endpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if adminURL == "" {
				return usagef("stats needs --admin-url, the URL the admin handler is mounted at")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(adminURL, "/")+"/stats", nil)
			if err != nil {
				return usagef("--admin-url does not parse")
			}
			if token == "" {
				token = os.Getenv("MONGOTENANT_ADMIN_TOKEN")
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return fmt.Errorf("admin endpoint: %w", err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return fmt.Errorf("admin endpoint: %w", err)
			}
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("admin endpoint: %s", resp.Status)
			}
			var stats map[string]any
			if err := json.Unmarshal(body, &stats); err != nil {
				return fmt.Errorf("admin endpoint: not a stats object: %w", err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), stats)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			for _, k := range slices.Sorted(maps.Keys(stats)) {
				fmt.Fprintf(w, "%s\t%v\n", k, stats[k])
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&adminURL, "admin-url", "", "where tenanthttp.Admin is mounted, e.g. http://localhost:8080/admin")
	cmd.Flags().StringVar(&token, "token", "", "bearer token for the admin endpoint (default $MONGOTENANT_ADMIN_TOKEN)")
	return cmd
}
