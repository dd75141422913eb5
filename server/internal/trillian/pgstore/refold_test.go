package pgstore_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/client/names"
	"github.com/undersigned/undersigned/server/internal/trillian/pgstore"
	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestNamesAreFoldedAgain: names stored with an older fold are folded
// again when a store opens the database, so that search finds them.
func TestNamesAreFoldedAgain(t *testing.T) {
	env := trilliantest.Need(t)
	uri := env.NewDatabase(t)
	ctx := context.Background()
	s, err := pgstore.Open(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	conn, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "Ｏ’Ｃｏｎｎｏｒ Zoë"
	if _, err := conn.Exec(ctx, `INSERT INTO disclosures (seq, salt, name, affiliation, country, folded) VALUES (1, '\x00', $1, '', '', 'ｏ’ｃｏｎｎｏｒ zoe')`, name); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `DELETE FROM meta WHERE key = 'fold_version'`); err != nil {
		t.Fatal(err)
	}
	s, err = pgstore.Open(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var folded string
	var v int64
	if err := conn.QueryRow(ctx, `SELECT folded FROM disclosures WHERE seq = 1`).Scan(&folded); err != nil || folded != names.Fold(name) {
		t.Errorf("folded %q, %v; want %q", folded, err, names.Fold(name))
	}
	if err := conn.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'fold_version'`).Scan(&v); err != nil || v != names.FoldVersion {
		t.Errorf("fold_version %d, %v", v, err)
	}
}
