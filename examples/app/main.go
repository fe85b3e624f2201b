// Command app is prenv's example preview app: one page showing which PR and commit it runs and the rows of
// its own database branch, and a /healthz that fails while that database is unreachable.
//
// Configuration comes from the environment the preview template gives the container:
//
//	PORT          listen port (default 8080, the template's service port)
//	HOST          listen address (default: all, as a pod needs; tests on a host say 127.0.0.1)
//	DATABASE_URL  the PR's database branch (from the database Secret)
//	PRENV_PR      the PR number
//	PRENV_SHA     the deployed commit
//	PUBLIC_URL    the environment's public URL (shown as a link)
//	APP_TABLE     the table whose rows the page lists (default products, the seed's table)
//	UPSTREAM_URL  another service of the environment whose /healthz the page reports (e.g. http://worker)
//
// `app migrate` is the app's database migration (prenv:database.migrate): it records the deployed commit in the
// listed table, once per sha; `app migrate SQL…` runs the given statements in one transaction instead.
package main

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var version = "dev"

func main() {
	cfg := configFromEnv(os.Getenv)
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("prenv-example-app " + version + "\n")
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := migrate(ctx, cfg, os.Args[2:]); err != nil {
			log.Printf("migration failed: %v", err)
			cancel()
			os.Exit(1)
		}
		log.Printf("migration done")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var store Store = missingStore{}
	if cfg.DatabaseURL != "" {
		pg, err := newPgStore(ctx, cfg.DatabaseURL, cfg.Table)
		if err != nil {
			// A malformed URL is a deployment mistake; report it on the page and in /healthz rather than crash.
			log.Printf("database: %v", err)
			store = brokenStore{err: err}
		} else {
			defer pg.Close()
			store = pg
		}
	}
	srv := &http.Server{
		Addr:              net.JoinHostPort(cfg.Host, cfg.Port),
		Handler:           NewHandler(cfg, store),
		ReadHeaderTimeout: 5 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("prenv example app %s: PR %q sha %q listening on :%s", version, cfg.PR, cfg.SHA, cfg.Port)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
