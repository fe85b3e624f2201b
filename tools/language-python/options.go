// The project's `runtime.options` and what follows from them: which Python, and its environment.

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// options are the `runtime.options` of Pulumi.yaml this host understands.
type options struct {
	// virtualenv is the resolved (absolute) `virtualenv` option, "" when unset.
	virtualenv string
}

// parseOptions reads `runtime.options`. `toolchain` may be unset or "pip": this host drives pip only,
// and a project asking for poetry or uv is refused rather than silently run with pip. Unknown keys
// are ignored, as upstream does.
func parseOptions(info *pulumirpc.ProgramInfo) (options, error) {
	var opts options
	if info == nil || info.GetOptions() == nil {
		return opts, nil
	}
	raw := info.GetOptions().AsMap()
	if v, ok := raw["toolchain"]; ok {
		if s, isString := v.(string); !isString || (s != "" && s != "pip") {
			return opts, fmt.Errorf("runtime.options.toolchain is %v in Pulumi.yaml, but prenv's Python language host "+
				"supports only \"pip\" (a virtualenv with requirements.txt); remove the option or set it to pip", v)
		}
	}
	if v, ok := raw["typechecker"]; ok && v != "" {
		return opts, fmt.Errorf("runtime.options.typechecker is %v in Pulumi.yaml, but prenv's Python language host "+
			"does not run type checkers; remove the option and run mypy/pyright yourself", v)
	}
	if v, ok := raw["virtualenv"]; ok {
		venv, isString := v.(string)
		if !isString {
			return opts, fmt.Errorf("runtime.options.virtualenv in Pulumi.yaml must be a path, not %v", v)
		}
		if venv != "" && !filepath.IsAbs(venv) {
			venv = filepath.Join(info.GetRootDirectory(), venv)
		}
		opts.virtualenv = venv
	}
	return opts, nil
}

// venvPython is the interpreter inside the configured virtualenv.
func (o options) venvPython() string {
	return filepath.Join(o.virtualenv, "bin", "python")
}

// python picks the interpreter: the project's virtualenv if set (which must exist), else
// $PULUMI_PYTHON_CMD, else the first python3 on PATH (prenv puts its venv there).
func (o options) python() (string, error) {
	if o.virtualenv != "" {
		python := o.venvPython()
		if _, err := os.Stat(python); err != nil {
			return "", fmt.Errorf("the virtualenv %s (runtime.options.virtualenv in Pulumi.yaml) has no %s; "+
				"run `pulumi install` to create it and install requirements.txt", o.virtualenv, python)
		}
		return python, nil
	}
	return ambientPython()
}

func ambientPython() (string, error) {
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

// env is the environment for anything run with the project's Python: with a virtualenv, it is
// activated the way `bin/activate` does (VIRTUAL_ENV set, its bin first on PATH, PYTHONHOME unset),
// so programs that start `python` or `pip` themselves get the same one.
func (o options) env() []string {
	env := os.Environ()
	if o.virtualenv == "" {
		return env
	}
	out := make([]string, 0, len(env)+2)
	path := ""
	for _, kv := range env {
		switch {
		case strings.HasPrefix(kv, "PATH="):
			path = strings.TrimPrefix(kv, "PATH=")
		case strings.HasPrefix(kv, "VIRTUAL_ENV="), strings.HasPrefix(kv, "PYTHONHOME="):
		default:
			out = append(out, kv)
		}
	}
	bin := filepath.Join(o.virtualenv, "bin")
	if path != "" {
		bin += string(os.PathListSeparator) + path
	}
	return append(out, "VIRTUAL_ENV="+o.virtualenv, "PATH="+bin)
}
