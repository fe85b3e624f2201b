package main

import (
	"context"
	"errors"
	"html/template"
	"log"
	"net"
	"net/http"
	"strings"
	"time"
)

// Config is what the app reads from its environment, once, at start.
type Config struct {
	Host        string
	Port        string
	DatabaseURL string
	PR          string
	SHA         string
	PublicURL   string
	Table       string
	UpstreamURL string
}

func configFromEnv(getenv func(string) string) Config {
	cfg := Config{
		Host:        getenv("HOST"),
		Port:        getenv("PORT"),
		DatabaseURL: getenv("DATABASE_URL"),
		PR:          getenv("PRENV_PR"),
		SHA:         getenv("PRENV_SHA"),
		PublicURL:   getenv("PUBLIC_URL"),
		Table:       getenv("APP_TABLE"),
		UpstreamURL: getenv("UPSTREAM_URL"),
	}
	if cfg.Port == "" {
		cfg.Port = "8080"
	}
	if cfg.Table == "" {
		cfg.Table = "products"
	}
	return cfg
}

// Table is a query result as text: column names and rows (nil cells are SQL NULL).
type Table struct {
	Columns []string
	Rows    [][]*string
}

// Store is the app's view of its database.
type Store interface {
	Ping(ctx context.Context) error
	Rows(ctx context.Context) (Table, error)
}

var errNoDatabase = errors.New("DATABASE_URL is not set")

// missingStore stands in when no DATABASE_URL was given: the page says so and /healthz fails.
type missingStore struct{}

func (missingStore) Ping(context.Context) error          { return errNoDatabase }
func (missingStore) Rows(context.Context) (Table, error) { return Table{}, errNoDatabase }

type brokenStore struct{ err error }

func (s brokenStore) Ping(context.Context) error          { return s.err }
func (s brokenStore) Rows(context.Context) (Table, error) { return Table{}, s.err }

// html/template escapes every value it prints, so PR, sha, table cells and errors cannot inject markup.
var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"deref": func(s *string) string { return *s },
}).Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>PR {{.PR}} · prenv example app</title></head>
<body>
<h1>Preview of PR {{.PR}}</h1>
<p>Deployed commit: <code id="sha">{{.SHA}}</code></p>
{{if .PublicURL}}<p>URL: <a href="{{.PublicURL}}">{{.PublicURL}}</a></p>{{end}}
{{if .Upstream}}<p id="upstream">Upstream {{.Upstream}}: {{.UpstreamStatus}}</p>{{end}}
<h2>Rows of {{.Table}}</h2>
{{if .Error}}<p id="error">Database unavailable: {{.Error}}</p>{{else}}<table id="rows" border="1">
<tr>{{range .Result.Columns}}<th>{{.}}</th>{{end}}</tr>
{{range .Result.Rows}}<tr>{{range .}}<td>{{if .}}{{deref .}}{{else}}<i>NULL</i>{{end}}</td>{{end}}</tr>
{{end}}</table>
<p>{{len .Result.Rows}} row(s)</p>{{end}}
</body>
</html>
`))

type pageData struct {
	PR, SHA, PublicURL, Table string
	Upstream, UpstreamStatus  string
	Result                    Table
	Error                     string
}

// NewHandler serves / (the page) and /healthz (200 only while the database answers).
func NewHandler(cfg Config, store Store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := store.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("database unreachable\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		data := pageData{PR: orUnknown(cfg.PR), SHA: orUnknown(cfg.SHA), PublicURL: cfg.PublicURL, Table: cfg.Table}
		if cfg.UpstreamURL != "" {
			data.Upstream, data.UpstreamStatus = cfg.UpstreamURL, upstreamStatus(ctx, cfg.UpstreamURL)
		}
		result, err := store.Rows(ctx)
		status := http.StatusOK
		if err != nil {
			log.Printf("reading %s: %v", cfg.Table, err)
			data.Error = publicError(err)
			status = http.StatusServiceUnavailable
		}
		data.Result = result
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if err := page.Execute(w, data); err != nil {
			log.Printf("rendering page: %v", err)
		}
	})
	return mux
}

var upstreamClient = &http.Client{Timeout: 2 * time.Second}

// upstreamStatus asks another service of the same environment for its /healthz (by its Service's DNS name, e.g.
// http://worker) and says how it answered: the status line, or the kind of failure (never a body).
func upstreamStatus(ctx context.Context, base string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/healthz", nil)
	if err != nil {
		return "not a URL"
	}
	resp, err := upstreamClient.Do(req)
	if err != nil {
		var dns *net.DNSError
		if errors.As(err, &dns) {
			return "name not found"
		}
		return "cannot connect"
	}
	defer resp.Body.Close()
	return resp.Status
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// publicError is what the page may show: never the DSN (it holds a password), only the kind of failure.
func publicError(err error) string {
	switch {
	case errors.Is(err, errNoDatabase):
		return err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	default:
		var q queryError
		if errors.As(err, &q) {
			return q.Error()
		}
		return "cannot connect"
	}
}

// queryError marks an error whose text is safe to show (it comes from the server about the query, not the DSN).
type queryError struct{ msg string }

func (e queryError) Error() string { return e.msg }
