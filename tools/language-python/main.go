// Command pulumi-language-python is prenv's own Python language host for the Pulumi engine.
//
// Why it exists: the upstream host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) which has no tags and no
// version served by the Go module proxy we can reach, so `make tools` cannot build it. This host
// implements the part of pulumirpc.LanguageRuntime that prenv needs: it runs a Python program
// through the SDK's own `pulumi-language-python-exec` script (installed next to this binary), with
// the arguments and environment that script expects. Plugins are pre-installed by `make tools`, so
// it reports no required packages and installs nothing.
//
// Protocol: the engine starts the host with its own address as the last argument; the host prints
// the port it serves gRPC on as the first line of stdout. Everything else it writes goes to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// version is set at build time (-X main.version=...) to the pulumi SDK version it was built against.
var version = "0.0.0-dev"

const (
	execScript = "pulumi-language-python-exec"
	// The exec script exits with this code after it has already shown the user an actionable error.
	bailExitCode = 32
	// How long a cancelled program gets between SIGINT and SIGKILL.
	cancelGrace = 10 * time.Second
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execPath string

	mu            sync.Mutex
	engineAddress string
	rootDirectory string
}

func main() {
	// Flags the engine (or older engines) may pass; accepted so that parsing never fails.
	flag.String("tracing", "", "Zipkin-compatible tracing endpoint (ignored)")
	flag.String("root", "", "project root (superseded by Handshake)")
	flag.String("virtualenv", "", "virtual environment (superseded by runtime options)")
	executor := flag.String("use-executor", "", "path of the exec script (default: next to this binary)")
	flag.Parse()

	execPath := *executor
	if execPath == "" {
		self, err := os.Executable()
		if err != nil {
			fatal("cannot locate own executable: %v", err)
		}
		execPath = filepath.Join(filepath.Dir(self), execScript)
	}
	if _, err := os.Stat(execPath); err != nil {
		fatal("missing %s next to the language host (%v); run `make tools`", execScript, err)
	}

	h := &host{execPath: execPath}
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[len(args)-1]
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("cannot listen: %v", err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fatal("language host stopped serving: %v", err)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: "+format+"\n", args...)
	os.Exit(1)
}

func (h *host) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	h.rootDirectory = req.GetRootDirectory()
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// Plugins are installed ahead of time by `make tools`; automatic acquisition is disabled.
func (h *host) GetRequiredPlugins(
	context.Context, *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	return &pulumirpc.GetRequiredPluginsResponse{}, nil
}

func (h *host) GetRequiredPackages(
	context.Context, *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	return &pulumirpc.GetRequiredPackagesResponse{}, nil
}

// Dependencies come from the project's virtualenv, created by `make venv`; nothing to install here.
func (h *host) InstallDependencies(
	*pulumirpc.InstallDependenciesRequest, grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	return nil
}

func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	python, err := h.python(req.GetInfo())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	out, err := exec.Command(python, "--version").CombinedOutput()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%s --version: %v", python, err)
	}
	return &pulumirpc.AboutResponse{
		Executable: python,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "Python "),
	}, nil
}

func (h *host) GetProgramDependencies(
	_ context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	python, err := h.python(req.GetInfo())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	out, err := exec.Command(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check").Output()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "pip list: %v", err)
	}
	var pkgs []struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &pkgs); err != nil {
		return nil, status.Errorf(codes.Internal, "parsing pip list output: %v", err)
	}
	resp := &pulumirpc.GetProgramDependenciesResponse{}
	for _, p := range pkgs {
		if req.GetTransitiveDependencies() || strings.HasPrefix(p.Name, "pulumi") {
			resp.Dependencies = append(resp.Dependencies, &pulumirpc.DependencyInfo{Name: p.Name, Version: p.Version})
		}
	}
	return resp, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	python, err := h.python(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	env, err := h.runEnv(req)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "serialising configuration: %v", err)
	}

	cmd := exec.CommandContext(ctx, python, append([]string{"-u", h.execPath}, h.runArgs(req)...)...)
	cmd.Dir = req.GetPwd()
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = cancelGrace

	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
}

// runArgs builds the command line `pulumi-language-python-exec` parses (see its argparse setup).
func (h *host) runArgs(req *pulumirpc.RunRequest) []string {
	h.mu.Lock()
	engine, root := h.engineAddress, h.rootDirectory
	h.mu.Unlock()
	if info := req.GetInfo(); info != nil && info.GetRootDirectory() != "" {
		root = info.GetRootDirectory()
	}

	var args []string
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", engine)
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("organization", req.GetOrganization())
	add("root_directory", root)
	return append(append(args, programPath(req)), req.GetArgs()...)
}

// programPath is the file or directory runpy executes; a directory means its __main__.py.
func programPath(req *pulumirpc.RunRequest) string {
	if info := req.GetInfo(); info != nil && info.GetProgramDirectory() != "" {
		entry := info.GetEntryPoint()
		if entry == "" {
			entry = "."
		}
		return filepath.Join(info.GetProgramDirectory(), entry)
	}
	if p := req.GetProgram(); p != "" { //nolint:staticcheck // older engines only fill this field
		return p
	}
	return "."
}

// runEnv adds the configuration variables the Python SDK reads at start-up
// (pulumi.runtime.get_config_env / get_config_secret_keys_env).
func (h *host) runEnv(req *pulumirpc.RunRequest) ([]string, error) {
	env := os.Environ()
	cfg := req.GetConfig()
	if cfg == nil {
		cfg = map[string]string{} // the SDK iterates it: "null" would crash the program at start-up
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	keys, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	return append(env, "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(keys)), nil
}

// python picks the interpreter: the project's `runtime.options.virtualenv` if set, else
// $PULUMI_PYTHON_CMD, else the first python3 on PATH (prenv puts its venv there).
func (h *host) python(info *pulumirpc.ProgramInfo) (string, error) {
	if info != nil && info.GetOptions() != nil {
		if venv, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok && venv != "" {
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(info.GetRootDirectory(), venv)
			}
			python := filepath.Join(venv, "bin", "python")
			if _, err := os.Stat(python); err != nil {
				return "", fmt.Errorf("the 'virtualenv' option in Pulumi.yaml is %q but %s does not exist", venv, python)
			}
			return python, nil
		}
	}
	name := os.Getenv("PULUMI_PYTHON_CMD")
	if name == "" {
		name = "python3"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("no Python interpreter %q on PATH: %w", name, err)
	}
	return path, nil
}
