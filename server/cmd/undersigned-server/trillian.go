package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"path/filepath"

	"github.com/undersigned/undersigned/server"
	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/embedded/sqlitestore"
	"github.com/undersigned/undersigned/server/internal/ledger"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
)

// trillianFlags are the flags of the Trillian engine.
type trillianFlags struct {
	addr     string
	treeID   int64
	postgres string
}

func addTrillianFlags(fs *flag.FlagSet) *trillianFlags {
	f := &trillianFlags{}
	fs.StringVar(&f.addr, "trillian", "", "the gRPC address of trillian_log_server: serve as a Trillian personality (with --tree-id and --postgres)")
	fs.Int64Var(&f.treeID, "tree-id", 0, "the Trillian tree to serve (a LOG tree)")
	fs.StringVar(&f.postgres, "postgres", "", "undersigned's own PostgreSQL database, a postgresql:// URI (Trillian engine)")
	return f
}

// config returns the Trillian engine's configuration, or nil for the
// embedded engine.
func (f *trillianFlags) config() (*server.TrillianConfig, error) {
	if f.addr == "" {
		if f.treeID != 0 || f.postgres != "" {
			return nil, errors.New("--tree-id and --postgres go with --trillian")
		}
		return nil, nil
	}
	if f.treeID == 0 || f.postgres == "" {
		return nil, errors.New("--trillian needs --tree-id and --postgres")
	}
	return &server.TrillianConfig{Addr: f.addr, TreeID: f.treeID, PostgresURI: f.postgres}, nil
}

// openTokens opens the token store: in the data folder, or in PostgreSQL
// for the Trillian engine.
func openTokens(ctx context.Context, dataDir, postgres string) (ledger.TokenStore, func() error, error) {
	if postgres != "" {
		st, err := pgstore.Open(ctx, postgres, slog.New(slog.DiscardHandler))
		if err != nil {
			return nil, nil, err
		}
		return st.Tokens(), st.Close, nil
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, datadir.StateFile))
	if err != nil {
		return nil, nil, err
	}
	return st.Tokens(), st.Close, nil
}
