package pgtest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Find scans every text, uuid, JSON and array column of every table of the
// database (a name on AdminURL's server) for needle, and returns where it
// occurs as "database.table.column". Tests of erasure use it to show that
// nothing of a person is left.
func Find(t testing.TB, database, needle string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := url.Parse(AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + database
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatalf("scanning %s: %v", database, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT table_schema, table_name, column_name FROM information_schema.columns
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
		AND data_type IN ('text', 'character varying', 'character', 'uuid', 'json', 'jsonb', 'ARRAY', 'bytea')`)
	if err != nil {
		t.Fatal(err)
	}
	type column struct{ schema, table, name string }
	columns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		return c, r.Scan(&c.schema, &c.table, &c.name)
	})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, c := range columns {
		table := pgx.Identifier{c.schema, c.table}.Sanitize()
		col := pgx.Identifier{c.name}.Sanitize()
		var hit bool
		err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE strpos(`+col+`::text, $1) > 0)`, needle).Scan(&hit)
		if err != nil {
			t.Fatalf("scanning %s.%s: %v", table, col, err)
		}
		if hit {
			found = append(found, database+"."+c.table+"."+c.name)
		}
	}
	return found
}
