package database_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/beepchat/beep/internal/database"
	"github.com/beepchat/beep/internal/pgtest"
)

// TestEncodeUUIDs: with EncodeUUIDs, uuid.UUID, *uuid.UUID and a nil
// *uuid.UUID arguments reach PostgreSQL as the same uuids (or NULL) as
// without it, in both the extended protocol's binary format and as text,
// and in arrays.
func TestEncodeUUIDs(t *testing.T) {
	uri := pgtest.NewDatabase(t, "beep_uuid_test")
	cfg, err := pgxpool.ParseConfig(uri)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AfterConnect = database.EncodeUUIDs
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	id := uuid.MustParse("0192a3b4-c5d6-7e8f-9a0b-1c2d3e4f5061")
	var none *uuid.UUID
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		var text, ptrText string
		var isNull bool
		err := pool.QueryRow(context.Background(), `SELECT $1::uuid::text, $2::uuid::text, $3::uuid IS NULL`, mode, id, &id, none).Scan(&text, &ptrText, &isNull)
		if err != nil {
			t.Fatalf("%v: %v", mode, err)
		}
		if text != id.String() || ptrText != id.String() || !isNull {
			t.Fatalf("%v: %q %q null=%v, want %s twice and NULL", mode, text, ptrText, isNull, id)
		}
		var back uuid.UUID
		if err := pool.QueryRow(context.Background(), `SELECT $1::uuid`, mode, id).Scan(&back); err != nil || back != id {
			t.Fatalf("%v: read back %s, %v", mode, back, err)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT cardinality($1::uuid[])`, []uuid.UUID{id, id}).Scan(&n); err != nil || n != 2 {
		t.Fatalf("an array of uuids: %d, %v", n, err)
	}
}
