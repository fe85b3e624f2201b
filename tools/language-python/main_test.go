// Tests for the language host, over gRPC as the engine calls it. The program is run by a stand-in exec
// script (the real one needs a resource monitor) that uses the real Python SDK to read its
// configuration, so the environment contract with the SDK is what is tested.
//
// Python: $PRENV_TEST_PYTHON (tests/integration/test_language_host.py passes the project's venv, which
// has the pulumi SDK), else python3 on PATH.

package main

import (
	"archive/zip"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeExec stands in for pulumi-language-python-exec. It records its argv, the configuration as the
// SDK reads it and its environment into $TEST_OUT/record.json, then behaves as $TEST_MODE says.
const fakeExec = `
import json, os, signal, sys, time
out = os.environ["TEST_OUT"]
def mark(name):
    open(os.path.join(out, name), "w").close()
def on_term(signum, frame):
    mark("got-sigterm")
    sys.exit(143)
signal.signal(signal.SIGTERM, on_term)
from pulumi.runtime.config import get_config_env, get_config_secret_keys_env
with open(os.path.join(out, "record.json"), "w") as f:
    json.dump({
        "argv": sys.argv[1:],
        "config": get_config_env(),
        "secret_keys": get_config_secret_keys_env(),
        "virtual_env": os.environ.get("VIRTUAL_ENV", ""),
        "path": os.environ.get("PATH", ""),
    }, f)
mode = os.environ.get("TEST_MODE", "ok")
if mode == "bail":
    sys.exit(32)
if mode == "fail":
    sys.exit(3)
if mode == "sleep":
    mark("started")
    try:
        time.sleep(120)
    except KeyboardInterrupt:
        mark("got-sigint")
        sys.exit(1)
`

func testPython(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PRENV_TEST_PYTHON"); p != "" {
		return p
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("no python3 on PATH and PRENV_TEST_PYTHON unset: %v", err)
	}
	return p
}

// setup writes the stand-in exec script, points the host at the test Python and returns the record dir.
func setup(t *testing.T) (execPath, out string) {
	t.Helper()
	dir := t.TempDir()
	execPath = filepath.Join(dir, execScript)
	if err := os.WriteFile(execPath, []byte(fakeExec), 0o755); err != nil {
		t.Fatal(err)
	}
	out = filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_OUT", out)
	t.Setenv("PULUMI_PYTHON_CMD", testPython(t))
	return execPath, out
}

// serve runs h on a loopback port for the duration of the test and returns a client.
func serve(t *testing.T, h *host) pulumirpc.LanguageRuntimeClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pulumirpc.NewLanguageRuntimeClient(conn)
}

type record struct {
	Argv       []string          `json:"argv"`
	Config     map[string]string `json:"config"`
	SecretKeys []string          `json:"secret_keys"`
	VirtualEnv string            `json:"virtual_env"`
	Path       string            `json:"path"`
}

func readRecord(t *testing.T, out string) record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, "record.json"))
	if err != nil {
		t.Fatalf("the program did not run: %v", err)
	}
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func waitForFile(t *testing.T, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %s", path, within)
}

func programInfo(t *testing.T, root string, options map[string]any) *pulumirpc.ProgramInfo {
	t.Helper()
	opts, err := structpb.NewStruct(options)
	if err != nil {
		t.Fatal(err)
	}
	return &pulumirpc.ProgramInfo{RootDirectory: root, ProgramDirectory: root, EntryPoint: ".", Options: opts}
}

func TestPlainAndSecretConfigReachTheProgramAsTheSDKReadsThem(t *testing.T) {
	execPath, out := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()

	resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{
		Project: "proj", Stack: "dev", Pwd: root, MonitorAddress: "127.0.0.1:1", DryRun: true, Parallel: 4,
		Config:           map[string]string{"proj:plain": "hello", "proj:password": "s3cret"},
		ConfigSecretKeys: []string{"proj:password"},
		Info:             programInfo(t, root, nil),
	})
	if err != nil || resp.GetError() != "" || resp.GetBail() {
		t.Fatalf("Run: %v %v", err, resp)
	}
	r := readRecord(t, out)
	if r.Config["proj:plain"] != "hello" || r.Config["proj:password"] != "s3cret" || len(r.Config) != 2 {
		t.Errorf("config as the SDK reads it: %v", r.Config)
	}
	if len(r.SecretKeys) != 1 || r.SecretKeys[0] != "proj:password" {
		t.Errorf("secret keys as the SDK reads them: %v", r.SecretKeys)
	}
	argv := strings.Join(r.Argv, " ")
	for _, want := range []string{"--monitor 127.0.0.1:1", "--project proj", "--stack dev", "--dry_run true", "--parallel 4"} {
		if !strings.Contains(argv, want) {
			t.Errorf("argv %q lacks %q", argv, want)
		}
	}
	if last := r.Argv[len(r.Argv)-1]; last != root {
		t.Errorf("program path %q, want the program directory %q", last, root)
	}
}

func TestExitCode32IsABailAndOtherCodesAreErrors(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()

	t.Setenv("TEST_MODE", "bail")
	resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{Pwd: root, Info: programInfo(t, root, nil)})
	if err != nil || !resp.GetBail() || resp.GetError() != "" {
		t.Fatalf("exit 32: want a bail without error, got %v %v", err, resp)
	}

	t.Setenv("TEST_MODE", "fail")
	resp, err = client.Run(context.Background(), &pulumirpc.RunRequest{Pwd: root, Info: programInfo(t, root, nil)})
	if err != nil || resp.GetBail() || !strings.Contains(resp.GetError(), "non-zero exit code: 3") {
		t.Fatalf("exit 3: want an error naming the code, got %v %v", err, resp)
	}
}

func TestCancelInterruptsTheRunningProgram(t *testing.T) {
	execPath, out := setup(t)
	h := newHost(execPath)
	client := serve(t, h)
	root := t.TempDir()
	t.Setenv("TEST_MODE", "sleep")

	done := make(chan *pulumirpc.RunResponse, 1)
	go func() {
		resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{Pwd: root, Info: programInfo(t, root, nil)})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- resp
	}()
	waitForFile(t, filepath.Join(out, "started"), 30*time.Second)
	start := time.Now()
	if _, err := client.Cancel(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	select {
	case resp := <-done:
		if !strings.Contains(resp.GetError(), "cancelled") {
			t.Errorf("Run after Cancel: %v", resp)
		}
	case <-time.After(defaultCancelGrace / 2):
		t.Fatal("the program was still running after Cancel")
	}
	waitForFile(t, filepath.Join(out, "got-sigint"), time.Second)
	t.Logf("stopped %s after Cancel", time.Since(start))
}

// buildHost compiles this package into a temporary binary (cheap with a warm build cache).
func buildHost(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pulumi-language-python")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return bin
}

// startHost runs the binary like the engine does and returns the process and a client.
func startHost(t *testing.T, bin string, args ...string) (*exec.Cmd, pulumirpc.LanguageRuntimeClient, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	port, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the port: %v (stderr: %s)", err, stderr)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	conn, err := grpc.NewClient("127.0.0.1:"+strings.TrimSpace(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cmd, pulumirpc.NewLanguageRuntimeClient(conn), stderr
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return exitErr.ExitCode()
		}
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("the host did not exit within %s", within)
		return -1
	}
}

func TestSIGTERMReachesTheProgramAndTheHostExits(t *testing.T) {
	execPath, out := setup(t)
	bin := buildHost(t)
	t.Setenv("TEST_MODE", "sleep") // read by the program, which inherits the host's environment
	cmd, client, stderr := startHost(t, bin, "-use-executor", execPath)
	root := t.TempDir()

	go func() {
		_, _ = client.Run(context.Background(), &pulumirpc.RunRequest{Pwd: root, Info: programInfo(t, root, nil)})
	}()
	waitForFile(t, filepath.Join(out, "started"), 30*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, defaultCancelGrace/2); code != 0 {
		t.Errorf("host exit code %d after SIGTERM; stderr: %s", code, stderr)
	}
	waitForFile(t, filepath.Join(out, "got-sigterm"), time.Second)
}

func TestTheHostExitsWhenTheEngineIsGone(t *testing.T) {
	execPath, _ := setup(t)
	bin := buildHost(t)
	// A stand-in engine that answers health checks until it is stopped.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	engine := grpc.NewServer()
	healthpb.RegisterHealthServer(engine, health.NewServer())
	go func() { _ = engine.Serve(lis) }()
	defer engine.Stop()

	cmd, client, stderr := startHost(t, bin, "-use-executor", execPath, "-healthcheck-interval", "100ms",
		lis.Addr().String())
	time.Sleep(500 * time.Millisecond) // several healthy checks
	if _, err := client.GetPluginInfo(context.Background(), &emptypb.Empty{}); err != nil {
		t.Fatalf("the host stopped while the engine was alive: %v (stderr: %s)", err, stderr)
	}
	engine.Stop()
	if code := waitExit(t, cmd, 5*time.Second); code == 0 {
		t.Errorf("want a non-zero exit when the engine is gone")
	}
	if !strings.Contains(stderr.String(), "engine") {
		t.Errorf("stderr does not say why: %s", stderr)
	}
}

// fakeSitePackages writes an installed distribution `name==version` shipping pulumi-plugin.json, the way
// pip lays out a wheel (module dir + dist-info with RECORD), and returns the directory for PYTHONPATH.
func fakeSitePackages(t *testing.T, name, version, pluginJSON string) string {
	t.Helper()
	site := t.TempDir()
	module := strings.ReplaceAll(name, "-", "_")
	distInfo := filepath.Join(site, module+"-"+version+".dist-info")
	files := map[string]string{
		filepath.Join(site, module, "__init__.py"):        "",
		filepath.Join(site, module, "pulumi-plugin.json"): pluginJSON,
		filepath.Join(distInfo, "METADATA"):               "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\n",
		filepath.Join(distInfo, "RECORD"): module + "/__init__.py,,\n" + module + "/pulumi-plugin.json,,\n" +
			module + "-" + version + ".dist-info/METADATA,,\n",
	}
	for path, text := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return site
}

func TestAMissingOrMismatchedPluginIsReportedBeforeTheProgramRunsNamingBothVersions(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()
	t.Setenv("PULUMI_PYTHON_CMD", cleanPython(t))
	t.Setenv("PYTHONPATH", fakeSitePackages(t, "pulumi-fakecloud", "4.19.0",
		`{"resource": true, "name": "fakecloud", "version": "4.19.0"}`))
	home := t.TempDir()
	t.Setenv("PULUMI_HOME", home)
	t.Setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
	plugins := filepath.Join(home, "plugins")
	if err := os.MkdirAll(filepath.Join(plugins, "resource-fakecloud-v4.18.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	req := &pulumirpc.GetRequiredPackagesRequest{Info: programInfo(t, root, nil)}

	_, err := client.GetRequiredPackages(context.Background(), req)
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(msg, "fakecloud v4.19.0") ||
		!strings.Contains(msg, "v4.18.0") || !strings.Contains(msg, "pulumi-fakecloud 4.19.0") {
		t.Fatalf("mismatched plugin: %v", err)
	}

	if err := os.RemoveAll(filepath.Join(plugins, "resource-fakecloud-v4.18.0")); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetRequiredPackages(context.Background(), req)
	if !strings.Contains(status.Convert(err).Message(), "no version of it") {
		t.Fatalf("missing plugin: %v", err)
	}

	if err := os.MkdirAll(filepath.Join(plugins, "resource-fakecloud-v4.19.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	resp, err := client.GetRequiredPackages(context.Background(), req)
	if err != nil {
		t.Fatalf("installed plugin: %v", err)
	}
	var found []string
	for _, p := range resp.GetPackages() {
		found = append(found, p.GetKind()+":"+p.GetName()+"@"+p.GetVersion())
	}
	if !strings.Contains(strings.Join(found, " "), "resource:fakecloud@v4.19.0") {
		t.Errorf("required packages %v lack fakecloud", found)
	}
	plugResp, err := client.GetRequiredPlugins(context.Background(), &pulumirpc.GetRequiredPluginsRequest{Info: req.Info})
	if err != nil || len(plugResp.GetPlugins()) != len(resp.GetPackages()) {
		t.Errorf("GetRequiredPlugins: %v %v", err, plugResp)
	}
}

func TestAPackageWithoutAResourcePluginIsNotRequired(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	t.Setenv("PULUMI_PYTHON_CMD", cleanPython(t))
	t.Setenv("PYTHONPATH", fakeSitePackages(t, "pulumi-fakecomponents", "1.0.0", `{"resource": false}`))
	t.Setenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
	t.Setenv("PULUMI_HOME", t.TempDir())
	resp, err := client.GetRequiredPackages(context.Background(),
		&pulumirpc.GetRequiredPackagesRequest{Info: programInfo(t, t.TempDir(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range resp.GetPackages() {
		if p.GetName() == "fakecomponents" {
			t.Errorf("a package declaring resource: false was reported: %v", p)
		}
	}
}

// fakeVenv makes a directory that looks like a virtualenv to the host: bin/python runs the test Python.
func fakeVenv(t *testing.T) string {
	t.Helper()
	venv := filepath.Join(t.TempDir(), "venv")
	if err := os.MkdirAll(filepath.Join(venv, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nexec " + testPython(t) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(venv, "bin", "python"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return venv
}

// cleanPython is a fresh virtualenv without pip or any package, so that only the fake packages on
// PYTHONPATH are installed (the test Python has real Pulumi packages whose plugins a test home lacks).
func cleanPython(t *testing.T) string {
	t.Helper()
	venv := filepath.Join(t.TempDir(), "clean")
	if out, err := exec.Command(testPython(t), "-m", "venv", "--without-pip", venv).CombinedOutput(); err != nil {
		t.Fatalf("python -m venv: %v\n%s", err, out)
	}
	return filepath.Join(venv, "bin", "python")
}

func TestVirtualenvOptionSetsVirtualEnvAndPathForTheProgram(t *testing.T) {
	execPath, out := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()
	venv := fakeVenv(t)
	rel, err := filepath.Rel(root, venv)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{
		Pwd: root, Info: programInfo(t, root, map[string]any{"virtualenv": rel, "toolchain": "pip"}),
	})
	if err != nil || resp.GetError() != "" {
		t.Fatalf("Run: %v %v", err, resp)
	}
	r := readRecord(t, out)
	if r.VirtualEnv != venv {
		t.Errorf("VIRTUAL_ENV=%q, want %q", r.VirtualEnv, venv)
	}
	if first := strings.Split(r.Path, ":")[0]; first != filepath.Join(venv, "bin") {
		t.Errorf("PATH starts with %q, want the virtualenv's bin", first)
	}

	resp, err = client.Run(context.Background(), &pulumirpc.RunRequest{
		Pwd: root, Info: programInfo(t, root, map[string]any{"virtualenv": "does-not-exist"}),
	})
	if err != nil || !strings.Contains(resp.GetError(), "pulumi install") {
		t.Errorf("missing virtualenv: %v %v", err, resp)
	}
}

func TestToolchainsOtherThanPipAreRefusedClearly(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()
	for _, tc := range []string{"uv", "poetry"} {
		info := programInfo(t, root, map[string]any{"toolchain": tc})
		resp, err := client.Run(context.Background(), &pulumirpc.RunRequest{Pwd: root, Info: info})
		if err != nil || !strings.Contains(resp.GetError(), `supports only "pip"`) {
			t.Errorf("Run with toolchain %s: %v %v", tc, err, resp)
		}
		_, err = client.GetRequiredPackages(context.Background(), &pulumirpc.GetRequiredPackagesRequest{Info: info})
		if !strings.Contains(status.Convert(err).Message(), tc) {
			t.Errorf("GetRequiredPackages with toolchain %s: %v", tc, err)
		}
	}
}

// writeWheel builds a minimal pure-Python wheel, so installing needs no network and no build backend.
func writeWheel(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "prenvtinypkg-1.0-py3-none-any.whl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, text := range map[string]string{
		"prenvtinypkg/__init__.py":                 "VALUE = 42\n",
		"prenvtinypkg-1.0.dist-info/METADATA":      "Metadata-Version: 2.1\nName: prenvtinypkg\nVersion: 1.0\n",
		"prenvtinypkg-1.0.dist-info/WHEEL":         "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
		"prenvtinypkg-1.0.dist-info/RECORD":        "prenvtinypkg/__init__.py,,\nprenvtinypkg-1.0.dist-info/METADATA,,\nprenvtinypkg-1.0.dist-info/WHEEL,,\nprenvtinypkg-1.0.dist-info/RECORD,,\n",
		"prenvtinypkg-1.0.dist-info/top_level.txt": "prenvtinypkg\n",
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, text); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func installDependencies(t *testing.T, client pulumirpc.LanguageRuntimeClient, info *pulumirpc.ProgramInfo) (string, error) {
	t.Helper()
	stream, err := client.InstallDependencies(context.Background(), &pulumirpc.InstallDependenciesRequest{Info: info})
	if err != nil {
		return "", err
	}
	var output strings.Builder
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return output.String(), nil
		}
		if err != nil {
			return output.String(), err
		}
		output.Write(msg.GetStdout())
		output.Write(msg.GetStderr())
	}
}

func TestInstallDependenciesCreatesTheVirtualenvAndInstallsRequirements(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	root := t.TempDir()
	wheel := writeWheel(t, root)
	info := programInfo(t, root, map[string]any{"virtualenv": "venv"})

	if _, err := installDependencies(t, client, info); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "no requirements.txt") {
		t.Fatalf("without requirements.txt: want a clear error, got %v", err)
	}

	if err := os.WriteFile(filepath.Join(root, "requirements.txt"), []byte(wheel+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	output, err := installDependencies(t, client, info)
	if err != nil {
		t.Fatalf("InstallDependencies: %v\n%s", err, output)
	}
	venvPython := filepath.Join(root, "venv", "bin", "python")
	got, err := exec.Command(venvPython, "-c", "import prenvtinypkg; print(prenvtinypkg.VALUE)").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "42" {
		t.Fatalf("the package is not importable from the virtualenv: %v %s\n%s", err, got, output)
	}

	if err := os.WriteFile(filepath.Join(root, "requirements.txt"), []byte(filepath.Join(root, "nope.whl")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if output, err := installDependencies(t, client, info); err == nil || !strings.Contains(err.Error(), "pip install") {
		t.Fatalf("a failing pip must fail the RPC: %v\n%s", err, output)
	}
}

func TestUnimplementedRPCsSaySoInASentence(t *testing.T) {
	execPath, _ := setup(t)
	client := serve(t, newHost(execPath))
	_, err := client.GenerateProgram(context.Background(), &pulumirpc.GenerateProgramRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "prenv's Python language host") {
		t.Errorf("GenerateProgram: %v", err)
	}
	stream, err := client.RunPlugin(context.Background(), &pulumirpc.RunPluginRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "policy packs") {
		t.Errorf("RunPlugin: %v", err)
	}
}
