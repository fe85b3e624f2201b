// Which plugins a program needs: the pulumi-plugin.json of every installed Pulumi package.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// findPackages prints, as JSON, every installed distribution that ships a top-level
// `<module>/pulumi-plugin.json` (from its RECORD), or whose name starts with "pulumi-" and has one at
// `<name with _>/pulumi-plugin.json` (upstream's rule, for installs without RECORD). The first
// distribution of a name on sys.path wins, as at import time.
const findPackages = `
import importlib.metadata as md, json, os, sys
out, seen = [], set()
for dist in md.distributions():
    name = dist.metadata["Name"] or ""
    key = name.lower().replace("_", "-")
    if not name or key in seen:
        continue
    seen.add(key)
    files = [f for f in (dist.files or []) if f.name == "pulumi-plugin.json" and len(f.parts) == 2]
    paths = [str(dist.locate_file(f)) for f in files]
    if not paths and key.startswith("pulumi-"):
        guess = dist.locate_file(os.path.join(key.replace("-", "_"), "pulumi-plugin.json"))
        if os.path.isfile(guess):
            paths = [str(guess)]
    for p in paths:
        out.append({"name": name, "version": dist.version, "plugin": p})
json.dump(out, sys.stdout)
`

// Packages known to carry no plugin although their name says "pulumi-" (upstream's list).
var packagesWithoutPlugins = map[string]bool{"pulumi-policy": true}

type installedPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Plugin  string `json:"plugin"` // path of its pulumi-plugin.json
}

// pluginJSON is pulumi-plugin.json as Pulumi's codegen writes it.
type pluginJSON struct {
	Resource         bool   `json:"resource"`
	Name             string `json:"name"`
	Version          string `json:"version"`
	Server           string `json:"server"`
	Parameterization *struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Value   []byte `json:"value"` // base64 in the file
	} `json:"parameterization"`
}

// required is one plugin the program needs, and the Python package that says so.
type required struct {
	pkg installedPackage
	dep *pulumirpc.PackageDependency
}

func (h *host) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	reqs, err := requiredPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPackagesResponse{}
	for _, r := range reqs {
		resp.Packages = append(resp.Packages, r.dep)
	}
	return resp, nil
}

// GetRequiredPlugins is the older form of GetRequiredPackages: the same plugins, without parameterization.
func (h *host) GetRequiredPlugins(
	ctx context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	reqs, err := requiredPlugins(ctx, req.GetInfo())
	if err != nil {
		return nil, err
	}
	resp := &pulumirpc.GetRequiredPluginsResponse{}
	for _, r := range reqs {
		resp.Plugins = append(resp.Plugins, &pulumirpc.PluginDependency{
			Name: r.dep.Name, Kind: r.dep.Kind, Version: r.dep.Version, Server: r.dep.Server,
		})
	}
	return resp, nil
}

// requiredPlugins lists the resource plugins of the installed Pulumi packages. When automatic
// plugin acquisition is off (always, under prenv) a plugin that is not installed at exactly that
// version is an error here, before the program runs, naming the version the package needs and the
// versions that are installed.
func requiredPlugins(ctx context.Context, info *pulumirpc.ProgramInfo) ([]required, error) {
	opts, err := parseOptions(info)
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	python, err := opts.python()
	if err != nil {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	cmd := exec.CommandContext(ctx, python, "-c", findPackages)
	cmd.Env = opts.env()
	if info != nil && info.GetProgramDirectory() != "" {
		cmd.Dir = info.GetProgramDirectory()
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "listing the installed Python packages with %s failed: %v\n%s",
			python, err, stderr.String())
	}
	var pkgs []installedPackage
	if err := json.Unmarshal(out, &pkgs); err != nil {
		return nil, status.Errorf(codes.Internal, "reading the list of installed Python packages: %v", err)
	}

	var reqs []required
	for _, pkg := range pkgs {
		if packagesWithoutPlugins[strings.ToLower(pkg.Name)] {
			continue
		}
		dep, err := pluginDependency(pkg)
		if err != nil {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		if dep != nil {
			reqs = append(reqs, required{pkg: pkg, dep: dep})
		}
	}
	sort.Slice(reqs, func(i, j int) bool { return reqs[i].dep.Name < reqs[j].dep.Name })
	if acquisitionDisabled() {
		for _, r := range reqs {
			if err := checkInstalled(r); err != nil {
				return nil, status.Error(codes.FailedPrecondition, err.Error())
			}
		}
	}
	return reqs, nil
}

// pluginDependency reads a package's pulumi-plugin.json: nil when it declares no resource plugin;
// a missing name or version is derived from the package, as upstream does.
func pluginDependency(pkg installedPackage) (*pulumirpc.PackageDependency, error) {
	data, err := os.ReadFile(pkg.Plugin)
	if err != nil {
		return nil, fmt.Errorf("reading %s of the Python package %s: %w", pkg.Plugin, pkg.Name, err)
	}
	var pj pluginJSON
	if err := json.Unmarshal(data, &pj); err != nil {
		return nil, fmt.Errorf("%s of the Python package %s is not valid JSON: %w", pkg.Plugin, pkg.Name, err)
	}
	if !pj.Resource {
		return nil, nil
	}
	name := pj.Name
	if name == "" {
		name = strings.TrimPrefix(strings.ToLower(pkg.Name), "pulumi-")
	}
	ver := pj.Version
	if ver == "" {
		ver = pluginVersionOf(pkg.Version)
	}
	if ver != "" && !strings.HasPrefix(ver, "v") {
		ver = "v" + ver
	}
	dep := &pulumirpc.PackageDependency{Kind: "resource", Name: name, Version: ver, Server: pj.Server}
	if p := pj.Parameterization; p != nil {
		dep.Parameterization = &pulumirpc.PackageParameterization{Name: p.Name, Version: p.Version, Value: p.Value}
	}
	return dep, nil
}

var releaseVersion = regexp.MustCompile(`^\d+\.\d+\.\d+$`)

// pluginVersionOf turns a Python package version into its plugin's version when that is unambiguous
// (a plain release, 4.18.0); pre-releases such as 4.18.0a1700000000 say nothing reliable about it.
func pluginVersionOf(pythonVersion string) string {
	if releaseVersion.MatchString(pythonVersion) {
		return pythonVersion
	}
	return ""
}

func acquisitionDisabled() bool {
	v, err := strconv.ParseBool(os.Getenv("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"))
	return err == nil && v
}

// pluginsDir is where `pulumi plugin install` puts plugins: $PULUMI_HOME/plugins (default ~/.pulumi).
func pluginsDir() string {
	home := os.Getenv("PULUMI_HOME")
	if home == "" {
		if user, err := os.UserHomeDir(); err == nil {
			home = filepath.Join(user, ".pulumi")
		}
	}
	return filepath.Join(home, "plugins")
}

// checkInstalled fails unless the plugin is installed at the exact version the package needs. A
// plugin binary on PATH (an "ambient" plugin, which the engine prefers whatever its version) is left
// to the engine.
func checkInstalled(r required) error {
	name, ver := r.dep.Name, r.dep.Version
	if ver == "" {
		return nil
	}
	if _, err := exec.LookPath("pulumi-resource-" + name); err == nil && !ignoreAmbient() {
		return nil
	}
	dir := pluginsDir()
	want := fmt.Sprintf("resource-%s-%s", name, ver)
	if isInstalled(filepath.Join(dir, want)) {
		return nil
	}
	var have []string
	matches, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("resource-%s-v*", name)))
	for _, m := range matches {
		if isInstalled(m) {
			have = append(have, strings.TrimPrefix(filepath.Base(m), fmt.Sprintf("resource-%s-", name)))
		}
	}
	found := "no version of it"
	if len(have) > 0 {
		sort.Strings(have)
		found = "only " + name + " " + strings.Join(have, ", ")
	}
	return fmt.Errorf("the Python package %s %s needs the resource plugin %s %s, but %s has %s; "+
		"run `make tools` (or `pulumi plugin install resource %s %s`), or install the package version that "+
		"matches the plugin", r.pkg.Name, r.pkg.Version, name, ver, dir, found, name, strings.TrimPrefix(ver, "v"))
}

// isInstalled: the plugin directory exists and no ".partial" marker says an install is unfinished.
func isInstalled(dir string) bool {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return false
	}
	_, err := os.Stat(dir + ".partial")
	return os.IsNotExist(err)
}

func ignoreAmbient() bool {
	v, err := strconv.ParseBool(os.Getenv("PULUMI_IGNORE_AMBIENT_PLUGINS"))
	return err == nil && v
}
