// Running programs: Run, Cancel, and the bookkeeping that lets signals reach every running program.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

const (
	// The exec script exits with this code after it has already shown the user an actionable error.
	bailExitCode = 32
	// How long an interrupted program gets before it (and its process group) is killed.
	defaultCancelGrace = 10 * time.Second
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execPath string
	programs *programs

	mu            sync.Mutex
	engineAddress string
	rootDirectory string
}

func newHost(execPath string) *host {
	return &host{execPath: execPath, programs: &programs{grace: defaultCancelGrace, running: map[*program]struct{}{}}}
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

// Cancel interrupts every running program (SIGINT to its process group, SIGKILL after the grace
// period); their Run calls then return an error saying so.
func (h *host) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.programs.signalAll(syscall.SIGINT, false)
	return &emptypb.Empty{}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	python, err := opts.python()
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	config, err := configEnv(req)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "serialising configuration: %v", err)
	}

	cmd := exec.Command(python, append([]string{"-u", h.execPath}, h.runArgs(req)...)...)
	cmd.Dir = req.GetPwd()
	cmd.Env = append(opts.env(), config...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	p, err := h.programs.start(cmd)
	if err != nil {
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	select {
	case <-p.done:
	case <-ctx.Done(): // the engine abandoned the call
		h.programs.signal(p, syscall.SIGINT)
		<-p.done
	}

	var exitErr *exec.ExitError
	switch err := p.err; {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case p.signalled():
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program cancelled (%s); it exited: %v", p.sentSignal(), err)}, nil
	case errors.As(err, &exitErr) && exitErr.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exitErr):
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
		}, nil
	default:
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program: %v", err)}, nil
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

// configEnv is the configuration the Python SDK reads at start-up
// (pulumi.runtime.get_config_env / get_config_secret_keys_env), as environment entries.
func configEnv(req *pulumirpc.RunRequest) ([]string, error) {
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
	return []string{"PULUMI_CONFIG=" + string(config), "PULUMI_CONFIG_SECRET_KEYS=" + string(keys)}, nil
}

// programs tracks running programs so that Cancel, SIGINT/SIGTERM and a vanished engine reach them.
// Each program runs in its own process group: the signal reaches the program and whatever it started,
// exactly once (not once from the terminal and again from us).
type programs struct {
	grace   time.Duration
	mu      sync.Mutex
	running map[*program]struct{}
}

type program struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed

	mu   sync.Mutex
	sent syscall.Signal // first signal we sent, 0 if none
}

func (p *program) signalled() bool { return p.sentSignal() != 0 }

func (p *program) sentSignal() syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent
}

func (ps *programs) start(cmd *exec.Cmd) (*program, error) {
	// Pdeathsig: if this host is killed outright, the program does not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &program{cmd: cmd, done: make(chan struct{})}
	ps.mu.Lock()
	ps.running[p] = struct{}{}
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		ps.mu.Lock()
		delete(ps.running, p)
		ps.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// signalAll sends sig to every running program and, with wait, waits until they have exited (each
// is killed after the grace period).
func (ps *programs) signalAll(sig syscall.Signal, wait bool) {
	ps.mu.Lock()
	all := make([]*program, 0, len(ps.running))
	for p := range ps.running {
		all = append(all, p)
	}
	ps.mu.Unlock()
	for _, p := range all {
		ps.signal(p, sig)
	}
	for _, p := range all {
		if wait {
			<-p.done
		}
	}
}

// signal sends sig to p's process group and arranges a SIGKILL if it is still running after the grace period.
func (ps *programs) signal(p *program, sig syscall.Signal) {
	p.mu.Lock()
	if p.sent == 0 {
		p.sent = sig
	}
	p.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	go func() {
		select {
		case <-p.done:
		case <-time.After(ps.grace):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
	}()
}
