package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fakeStore struct {
	table Table
	err   error
}

func (f fakeStore) Ping(context.Context) error          { return f.err }
func (f fakeStore) Rows(context.Context) (Table, error) { return f.table, f.err }

func str(s string) *string { return &s }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

var seed = Table{
	Columns: []string{"id", "name", "price"},
	Rows:    [][]*string{{str("1"), str("teapot"), str("25")}, {str("2"), str("kettle"), nil}},
}

func testConfig() Config {
	return configFromEnv(env{
		"PRENV_PR": "101", "PRENV_SHA": "0123456789abcdef0123456789abcdef01234567",
		"PUBLIC_URL": "https://web-101.preview.localtest.me",
	}.get)
}

type env map[string]string

func (e env) get(k string) string { return e[k] }

func TestPageShowsPrShaAndRows(t *testing.T) {
	code, body := get(t, NewHandler(testConfig(), fakeStore{table: seed}), "/")
	if code != http.StatusOK {
		t.Fatalf("status %d, want 200", code)
	}
	for _, want := range []string{
		"Preview of PR 101",
		`<code id="sha">0123456789abcdef0123456789abcdef01234567</code>`,
		"<th>name</th>", "<td>teapot</td>", "<td>kettle</td>", "<i>NULL</i>", "2 row(s)",
		`href="https://web-101.preview.localtest.me"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}

func TestEverythingShownIsHtmlEscaped(t *testing.T) {
	cfg := configFromEnv(env{"PRENV_PR": "<b>1</b>", "PRENV_SHA": `"><script>x()</script>`, "PUBLIC_URL": "javascript:alert(1)"}.get)
	table := Table{Columns: []string{"<col>"}, Rows: [][]*string{{str("<img src=x onerror=alert(1)>")}}}
	_, body := get(t, NewHandler(cfg, fakeStore{table: table}), "/")
	for _, bad := range []string{"<b>1</b>", "<script>", "<img", "<col>", `href="javascript:`} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains unescaped %q:\n%s", bad, body)
		}
	}
	if !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("escaped cell missing:\n%s", body)
	}
}

func TestHealthzFollowsTheDatabase(t *testing.T) {
	cases := []struct {
		name  string
		store Store
		want  int
	}{
		{"reachable", fakeStore{table: seed}, http.StatusOK},
		{"unreachable", fakeStore{err: errors.New("dial tcp: connection refused")}, http.StatusServiceUnavailable},
		{"no DATABASE_URL", missingStore{}, http.StatusServiceUnavailable},
		{"malformed DATABASE_URL", brokenStore{err: errors.New("bad url")}, http.StatusServiceUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if code, _ := get(t, NewHandler(testConfig(), c.store), "/healthz"); code != c.want {
				t.Fatalf("/healthz = %d, want %d", code, c.want)
			}
		})
	}
}

func TestAnUnreachableDatabaseIsShownWithoutItsUrl(t *testing.T) {
	secret := errors.New("failed to connect to `user=pr_101 password=hunter2 host=10.0.0.1`")
	code, body := get(t, NewHandler(testConfig(), fakeStore{err: secret}), "/")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", code)
	}
	if strings.Contains(body, "hunter2") || !strings.Contains(body, "Database unavailable: cannot connect") {
		t.Fatalf("page should say 'cannot connect' and hide the error text:\n%s", body)
	}
	_, body = get(t, NewHandler(testConfig(), fakeStore{err: queryError{msg: `relation "products" does not exist`}}), "/")
	if !strings.Contains(body, "relation &#34;products&#34; does not exist") {
		t.Fatalf("query errors are shown (escaped):\n%s", body)
	}
}

func TestDefaultsMatchTheTemplate(t *testing.T) {
	cfg := configFromEnv(env{}.get)
	if cfg.Port != "8080" || cfg.Table != "products" || cfg.PR != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
	_, body := get(t, NewHandler(cfg, missingStore{}), "/")
	if !strings.Contains(body, "Preview of PR unknown") || !strings.Contains(body, "DATABASE_URL is not set") {
		t.Fatalf("page without config:\n%s", body)
	}
}

func TestOnlyTheRootAndHealthzAreServed(t *testing.T) {
	if code, _ := get(t, NewHandler(testConfig(), fakeStore{table: seed}), "/nope"); code != http.StatusNotFound {
		t.Fatalf("/nope = %d, want 404", code)
	}
}

func TestTheTableNameIsQuotedAsAnIdentifier(t *testing.T) {
	s, err := newPgStore(context.Background(), "postgres://u@127.0.0.1:1/db", `x"; DROP TABLE y; --`)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if want := `SELECT * FROM "x""; DROP TABLE y; --" ORDER BY 1 LIMIT 100`; s.query != want {
		t.Fatalf("query %q, want %q", s.query, want)
	}
}

func TestAMalformedUrlIsReportedWithoutItsText(t *testing.T) {
	_, err := newPgStore(context.Background(), "postgres://u:hunter2@host:notaport/db", "products")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestThePageSaysHowTheUpstreamServiceAnswered(t *testing.T) {
	upstream := httptest.NewServer(NewHandler(testConfig(), fakeStore{table: seed}))
	defer upstream.Close()
	cfg := testConfig()
	cfg.UpstreamURL = upstream.URL
	_, body := get(t, NewHandler(cfg, fakeStore{table: seed}), "/")
	if want := `<p id="upstream">Upstream ` + upstream.URL + `: 200 OK</p>`; !strings.Contains(body, want) {
		t.Errorf("page lacks %q:\n%s", want, body)
	}

	cfg.UpstreamURL = "http://127.0.0.1:1"
	_, body = get(t, NewHandler(cfg, fakeStore{table: seed}), "/")
	if want := "Upstream http://127.0.0.1:1: cannot connect"; !strings.Contains(body, want) {
		t.Errorf("page lacks %q:\n%s", want, body)
	}
}

func TestNoUpstreamMeansNoUpstreamLine(t *testing.T) {
	_, body := get(t, NewHandler(testConfig(), fakeStore{table: seed}), "/")
	if strings.Contains(body, `id="upstream"`) {
		t.Errorf("page names an upstream although none is configured:\n%s", body)
	}
}
