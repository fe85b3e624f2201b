package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// maxRows bounds the page; the seed tables are small, a PR's branch may not be.
const maxRows = 100

// pgStore reads the PR's database through a pool that reconnects by itself once the server is back.
type pgStore struct {
	pool  *pgxpool.Pool
	query string
}

func newPgStore(ctx context.Context, url, table string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included.
		return nil, errors.New("DATABASE_URL is not a valid PostgreSQL URL")
	}
	cfg.MaxConns = 4
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	// The simple protocol returns every column as text, which is what the page prints.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	pool, err := pgxpool.NewWithConfig(ctx, cfg) // connects lazily
	if err != nil {
		return nil, errors.New("cannot set up the database pool")
	}
	ident := pgx.Identifier{table}.Sanitize()
	return &pgStore{pool: pool, query: fmt.Sprintf("SELECT * FROM %s ORDER BY 1 LIMIT %d", ident, maxRows)}, nil
}

func (s *pgStore) Close() { s.pool.Close() }

func (s *pgStore) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

func (s *pgStore) Rows(ctx context.Context) (Table, error) {
	rows, err := s.pool.Query(ctx, s.query)
	if err != nil {
		return Table{}, classify(err)
	}
	defer rows.Close()
	var t Table
	for _, f := range rows.FieldDescriptions() {
		t.Columns = append(t.Columns, f.Name)
	}
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v != nil {
				s := string(v)
				row[i] = &s
			}
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return Table{}, classify(err)
	}
	return t, nil
}

// classify keeps server-side query errors (e.g. "relation does not exist") showable and hides the rest.
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return queryError{msg: pgErr.Message}
	}
	return err
}
