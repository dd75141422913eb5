package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/google/trillian"

	"github.com/undersigned/undersigned/server/internal/migrate"
	trillianengine "github.com/undersigned/undersigned/server/internal/trillian"
)

// migrateCommand copies a stopped embedded log into a new Trillian tree.
func migrateCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var cfg migrate.Config
	fs.StringVar(&cfg.From, "from", "undersigned-data", "the embedded engine's data folder (its server stopped)")
	fs.StringVar(&cfg.To, "data", "", "the new data folder of the Trillian engine (absent or empty)")
	var tc trillianengine.Config
	registerTrillian(fs, &tc)
	addr := &tc.Addr
	fs.IntVar(&cfg.BatchSize, "batch-size", 1000, "the most leaves per AddSequencedLeaves")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	cfg.PostgresURI = tc.PostgresURI
	if cfg.To == "" || *addr == "" || cfg.PostgresURI == "" {
		return usageError{errors.New("migrate needs --data, --trillian and --postgres")}
	}
	if tc.TreeID != 0 {
		return usageError{errors.New("migrate creates its tree: --tree-id is not for it")}
	}
	conn, err := trillianengine.Dial(*addr, tc.TLS)
	if err != nil {
		return err
	}
	defer conn.Close()
	cfg.Log, cfg.Admin = trillian.NewTrillianLogClient(conn), trillian.NewTrillianAdminClient(conn)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	res, err := migrate.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "migrated %d entries of %s into tree %d (roots checked at %d sizes); serve it with:\n",
		res.Size, res.Origin, res.TreeID, len(res.Checked))
	fmt.Fprintf(os.Stderr, "  undersigned-server serve --data %s --trillian %s --tree-id %d --postgres '%s'\n", cfg.To, *addr, res.TreeID, cfg.PostgresURI)
	fmt.Println(res.TreeID)
	return nil
}
