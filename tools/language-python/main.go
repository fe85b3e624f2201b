// Command pulumi-language-python is prenv's own Python language host for the Pulumi engine.
//
// Why it exists: the upstream host lives in its own Go module
// (github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) which has no tags and no
// version served by the Go module proxy we can reach, so `make tools` cannot build it. This host
// implements pulumirpc.LanguageRuntime for what a pip-managed Python project needs: it runs the
// program through the SDK's own `pulumi-language-python-exec` script (installed next to this binary),
// reports the plugins of the installed Pulumi packages (their pulumi-plugin.json) so that a missing
// plugin fails before the program runs, installs requirements.txt into the virtualenv, and forwards
// cancellation and signals to the program. Code generation, packing, linking and Python plugins
// (component providers, policy packs) are not implemented and say so (unimplemented.go).
//
// Protocol: the engine starts the host with its own address as the argument; the host prints the
// port it serves gRPC on as the first line of stdout. Everything else it writes goes to stderr. The
// host exits on SIGINT/SIGTERM (after passing the signal on to running programs) and when the engine
// stops answering health checks.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// version is set at build time (-X main.version=...) to the pulumi SDK version it was built against.
var version = "0.0.0-dev"

const (
	execScript = "pulumi-language-python-exec"
	// How often the engine is health-checked. Upstream checks every 5 minutes; a local loopback
	// check is cheap, and a host (and its program) outliving a crashed engine by minutes is not.
	defaultHealthInterval = 5 * time.Second
	// How long the server may take to finish in-flight RPCs on shutdown before it is stopped hard.
	shutdownGrace = 30 * time.Second
)

func main() {
	// Flags the engine (or older engines) may pass; accepted so that parsing never fails.
	flag.String("tracing", "", "Zipkin-compatible tracing endpoint (ignored)")
	flag.String("root", "", "project root (superseded by Handshake)")
	flag.String("virtualenv", "", "virtual environment (superseded by runtime options)")
	executor := flag.String("use-executor", "", "path of the exec script (default: next to this binary)")
	interval := flag.Duration("healthcheck-interval", defaultHealthInterval, "how often to check the engine is alive")
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

	h := newHost(execPath)
	if args := flag.Args(); len(args) > 0 {
		h.engineAddress = args[0]
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal("cannot listen: %v", err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(400 * 1024 * 1024))
	pulumirpc.RegisterLanguageRuntimeServer(srv, h)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(srv, healthSrv)

	// Stop on SIGINT/SIGTERM or when the engine is gone; either way the running programs get a signal
	// first and the server finishes their Run calls (bounded by shutdownGrace).
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	engineGone := make(chan error, 1)
	if h.engineAddress != "" {
		if err := watchEngine(context.Background(), h.engineAddress, *interval, engineGone); err != nil {
			fatal("cannot health-check the engine at %s: %v", h.engineAddress, err)
		}
	}
	exitCode := make(chan int, 1)
	go func() {
		select {
		case sig := <-signals:
			h.programs.signalAll(sig.(syscall.Signal), true)
			exitCode <- 0
		case err := <-engineGone:
			fmt.Fprintf(os.Stderr, "pulumi-language-python: the engine at %s is gone (%v); stopping\n",
				h.engineAddress, err)
			h.programs.signalAll(syscall.SIGINT, true)
			exitCode <- 1
		}
		healthSrv.Shutdown()
		stopped := make(chan struct{})
		go func() { srv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(shutdownGrace):
			srv.Stop()
		}
	}()

	fmt.Printf("%d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fatal("language host stopped serving: %v", err)
	}
	os.Exit(<-exitCode)
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: "+format+"\n", args...)
	os.Exit(1)
}

// watchEngine polls the engine's gRPC health service every interval, as upstream's
// rpcutil.Healthcheck does, and reports on gone after two failed checks in a row (one missed check
// can be a blip on a busy machine). Unimplemented counts as alive: all we ask is that it answers.
func watchEngine(ctx context.Context, addr string, interval time.Duration, gone chan<- error) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	client := healthpb.NewHealthClient(conn)
	go func() {
		defer conn.Close()
		failures := 0
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
			_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
			if err == nil || status.Code(err) == codes.Unimplemented {
				failures = 0
				continue
			}
			if failures++; failures >= 2 {
				gone <- err
				return
			}
		}
	}()
	return nil
}
