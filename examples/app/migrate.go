package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
)

// The example app's migration, run as `app migrate` by prenv's migration Job (prenv:database.migrate) after the
// PR's database branch exists and before the app rolls out. It records the deployed commit in the table the page
// lists, once per sha, so the page shows that the migration ran on this PR's own database. `app migrate SQL…`
// runs the given statements instead (in one transaction), which is how a team's failing migration is simulated.
const recordSQL = `INSERT INTO %s (name) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM %s WHERE name = $1)`

func migrate(ctx context.Context, cfg Config, statements []string) error {
	if cfg.DatabaseURL == "" {
		return errNoDatabase
	}
	connCfg, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return errors.New("DATABASE_URL is not a valid PostgreSQL URL") // pgx's error may quote the password
	}
	connCfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return fmt.Errorf("cannot connect: %w", classify(err))
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return classify(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if len(statements) == 0 {
		table := pgx.Identifier{cfg.Table}.Sanitize()
		name := "migrated at " + orUnknown(cfg.SHA)
		if _, err := tx.Exec(ctx, fmt.Sprintf(recordSQL, table, table), name); err != nil {
			return classify(err)
		}
		log.Printf("migration: recorded %q in %s", name, cfg.Table)
	}
	for i, stmt := range statements {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("statement %d: %w", i+1, classify(err))
		}
		log.Printf("migration: statement %d applied", i+1)
	}
	return tx.Commit(ctx)
}
