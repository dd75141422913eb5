package pgstore

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/undersigned/undersigned/server/servertest/trilliantest"
)

// TestPrefetchPlansStayLookups checks that admission's prefetch queries
// keep looking entries up by key when their plan was made while the
// database was young: pgx prepares a statement once per connection, and a
// generic plan made over a few hundred entries (a hash join over a scan of
// every entry) was kept as the table grew, up to a second per batch.
func TestPrefetchPlansStayLookups(t *testing.T) {
	env := trilliantest.Need(t)
	uri := env.NewDatabase(t)
	ctx := context.Background()
	s, err := Open(ctx, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := pgx.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	fill := func(from, to int) {
		t.Helper()
		for _, q := range []string{
			`INSERT INTO entries (seq, idx, leaf_hash, kind, letter_id, record, principal)
				SELECT g, g, sha256(g::text::bytea), 1, 'letter', repeat('r', 400)::bytea, 'token:t' FROM generate_series($1::bigint, $2::bigint) g`,
			`INSERT INTO dedup (key, seq) SELECT sha256(('key ' || g)::bytea), g FROM generate_series($1::bigint, $2::bigint) g`,
		} {
			if _, err := c.Exec(ctx, q, from, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill(1, 300)
	// The plan every later execution uses is made now, over 300 entries.
	if _, err := c.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{"dedup": prefetchDedup, "letters": prefetchLetters, "targets": prefetchTargets}
	args := map[string]string{
		"dedup":   `ARRAY[sha256('key 1'::bytea), sha256('key 2'::bytea)]`,
		"letters": `ARRAY['letter']`,
		"targets": `ARRAY[1::bigint, 2]`,
	}
	for name, q := range queries {
		if _, err := c.Exec(ctx, fmt.Sprintf("PREPARE %s AS %s", name, q)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := c.Exec(ctx, fmt.Sprintf("EXECUTE %s(%s)", name, args[name])); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	fill(301, 30000)
	for name := range queries {
		rows, err := c.Query(ctx, fmt.Sprintf("EXPLAIN EXECUTE %s(%s)", name, args[name]), pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if p := strings.Join(plan, "\n"); strings.Contains(p, "Seq Scan on entries") {
			t.Errorf("the %s prefetch scans every entry once the table grew:\n%s", name, p)
		}
	}
}
