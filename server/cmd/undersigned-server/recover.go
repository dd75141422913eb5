package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	trillianpb "github.com/google/trillian"

	"github.com/undersigned/undersigned/server/internal/datadir"
	"github.com/undersigned/undersigned/server/internal/trillian"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
)

// stringList is a flag that may be given more than once.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// recoverCommand brings a Trillian log back to the checkpoint its key
// signed, after a restore of its databases (see trillian.Recover).
func recoverCommand(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	data := fs.String("data", "undersigned-data", "the data folder (the log's key and secrets)")
	var states, receipts stringList
	fs.Var(&states, "state", "a frontend's state folder (--state of serve), repeatable: the largest checkpoint their histories hold is the size the log comes back to (default the data folder)")
	fs.Var(&receipts, "receipts", "a receipt file or a folder of receipts, repeatable: where to find the entries neither Trillian nor undersigned's database holds any more")
	var tc trillian.Config
	registerTrillian(fs, &tc)
	window := fs.Int("window", 256, "how many entries are queued before Trillian is waited for and each checked at its index")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if tc.Addr == "" || tc.TreeID == 0 || tc.PostgresURI == "" {
		return usageError{errors.New("recover needs --trillian, --tree-id and --postgres, as the frontends are given them")}
	}
	if _, err := os.Stat(filepath.Join(*data, datadir.LogKeyFile)); err != nil {
		return usageError{fmt.Errorf("recover: %s holds no log key: give the log's data folder with --data", *data)}
	}
	f, err := datadir.Open(*data, "")
	if err != nil {
		return err
	}
	conn, err := trillian.Dial(tc.Addr, tc.TLS)
	if err != nil {
		return err
	}
	defer conn.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := pgstore.Open(ctx, tc.PostgresURI, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Bind(ctx, f.Origin, tc.TreeID); err != nil {
		return err
	}
	res, err := trillian.Recover(ctx, trillian.RecoverConfig{
		Folder: f, StateDirs: states, Client: trillianpb.NewTrillianLogClient(conn), TreeID: tc.TreeID,
		Store: st, Receipts: receipts, Window: *window, Logger: logger,
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	fmt.Fprintf(os.Stderr, "recovered: Trillian's tree went from %d to %d entries (%d queued again from undersigned's database, %d from receipts; %d admitted again into the database, %d no server admitted recorded as foreign); the log is back at the checkpoint the key signed:\n%s",
		res.TrillianSize, res.Size, res.FromStore, res.FromReceipts, res.Readmitted, res.Foreign, res.Signed)
	fmt.Fprintln(os.Stderr, "start the frontends again.")
	return nil
}
