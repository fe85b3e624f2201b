// Dependencies: installing requirements.txt into the virtualenv, and reporting what is installed.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InstallDependencies installs the project's requirements.txt with pip: into runtime.options.virtualenv
// (created first when missing), or else into the virtualenv the ambient python3 belongs to. It never
// installs into a system Python and never succeeds without having installed something: no
// requirements.txt, no virtualenv or a failing pip are errors.
func (h *host) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, stream grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	info := req.GetInfo()
	opts, err := parseOptions(info)
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	programDir := req.GetDirectory() //nolint:staticcheck // older engines only fill this field
	root := ""
	if info != nil {
		programDir, root = info.GetProgramDirectory(), info.GetRootDirectory()
	}
	requirements, err := findRequirements(programDir, root)
	if err != nil {
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	out := &streamWriter{send: func(b []byte) error {
		return stream.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	errOut := &streamWriter{send: func(b []byte) error {
		return stream.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	ctx := stream.Context()

	var python string
	if opts.virtualenv != "" {
		python = opts.venvPython()
		if _, err := os.Stat(python); err != nil {
			base, err := ambientPython()
			if err != nil {
				return status.Error(codes.FailedPrecondition, err.Error())
			}
			fmt.Fprintf(out, "Creating virtual environment %s with %s\n", opts.virtualenv, base)
			if err := runTo(ctx, out, errOut, os.Environ(), base, "-m", "venv", opts.virtualenv); err != nil {
				return status.Errorf(codes.Internal, "creating the virtualenv %s failed: %v", opts.virtualenv, err)
			}
		}
	} else {
		python, err = ambientPython()
		if err != nil {
			return status.Error(codes.FailedPrecondition, err.Error())
		}
		inVenv, err := exec.CommandContext(ctx, python, "-c", "import sys; print(sys.prefix != sys.base_prefix)").Output()
		if err != nil {
			return status.Errorf(codes.Internal, "asking %s whether it is in a virtualenv: %v", python, err)
		}
		if strings.TrimSpace(string(inVenv)) != "True" {
			return status.Errorf(codes.FailedPrecondition, "%s is not inside a virtualenv and the project sets no "+
				"runtime.options.virtualenv; refusing to install %s into a system Python. Set virtualenv in "+
				"Pulumi.yaml or put a virtualenv's python3 first on PATH", python, requirements)
		}
	}

	fmt.Fprintf(out, "Installing %s with %s -m pip\n", requirements, python)
	err = runTo(ctx, out, errOut, opts.env(), python,
		"-m", "pip", "install", "--disable-pip-version-check", "-r", requirements)
	if err != nil {
		return status.Errorf(codes.Internal, "pip install -r %s failed (%v); its output is above", requirements, err)
	}
	return nil
}

// findRequirements looks for requirements.txt in the program directory, then the project root.
func findRequirements(dirs ...string) (string, error) {
	var looked []string
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, "requirements.txt")
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		looked = append(looked, dir)
	}
	return "", fmt.Errorf("no requirements.txt in %s: prenv's Python language host installs dependencies "+
		"only from requirements.txt (toolchain: pip)", strings.Join(looked, " or "))
}

func runTo(ctx context.Context, stdout, stderr *streamWriter, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	return cmd.Run()
}

// streamWriter forwards writes to a gRPC stream; stdout and stderr share the stream, so sends are serialised.
type streamWriter struct {
	send func([]byte) error
}

var streamMu sync.Mutex

func (w *streamWriter) Write(p []byte) (int, error) {
	streamMu.Lock()
	defer streamMu.Unlock()
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	python, err := opts.python()
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
	opts, err := parseOptions(req.GetInfo())
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	python, err := opts.python()
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	cmd := exec.Command(python, "-m", "pip", "list", "--format", "json", "--disable-pip-version-check")
	cmd.Env = opts.env()
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return nil, status.Errorf(codes.Internal, "pip list: %v\n%s", err, exitErr.Stderr)
		}
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

// RuntimeOptionsPrompts: `pulumi new` asks nothing; pip is the only toolchain.
func (h *host) RuntimeOptionsPrompts(
	context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}
