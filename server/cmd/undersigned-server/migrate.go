package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/google/trillian"

	"github.com/undersigned/undersigned/server/internal/datadir"
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
	fmt.Fprintf(os.Stderr, "%s is retired: undersigned-server refuses to serve it from now on (undersigned-server unmigrate undoes that)\n", cfg.From)
	fmt.Println(res.TreeID)
	return nil
}

// unmigrateCommand undoes the retirement of an embedded data folder that
// a migration left behind, so that the embedded engine serves it again.
func unmigrateCommand(args []string) error {
	fs := flag.NewFlagSet("unmigrate", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: undersigned-server unmigrate --data DIR --tree-id N

Serve an embedded data folder again after its log was migrated into
Trillian tree N, abandoning the migration. Only do this if no frontend
ever served tree N: a write there and one here fork the log, which every
auditor then reports. Give the tree id the migration printed (the folder's
"retired" file holds it) to confirm which migration is abandoned.

`)
		fs.PrintDefaults()
	}
	data := fs.String("data", "undersigned-data", "the retired embedded data folder")
	tree := fs.Int64("tree-id", 0, "the tree the folder was migrated into (required: it confirms the undo)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *tree == 0 {
		return usageError{errors.New("unmigrate needs --tree-id, the tree the folder was migrated into")}
	}
	if err := datadir.Unretire(*data, *tree); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%s is no longer retired: the embedded engine can serve it again; do not serve tree %d as well\n", *data, *tree)
	return nil
}
