// The RPCs this host does not implement, each answering Unimplemented with a sentence saying what is
// missing (the embedded UnimplementedLanguageRuntimeServer would only say "method X not implemented").

package main

import (
	"context"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const notHere = "prenv's Python language host (tools/language-python) "

func unimplemented(what string) error {
	return status.Error(codes.Unimplemented, notHere+what)
}

// RunPlugin is how the engine runs plugins written in Python: component providers and policy packs.
func (h *host) RunPlugin(
	*pulumirpc.RunPluginRequest, grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	return unimplemented("does not run Python plugins: policy packs and component providers written in Python " +
		"are not supported (Python dynamic providers are, through pulumi-resource-pulumi-python)")
}

func (h *host) Template(context.Context, *pulumirpc.TemplateRequest) (*pulumirpc.TemplateResponse, error) {
	return nil, unimplemented("does not render project templates; `pulumi new` with Python templates is not supported")
}

func (h *host) GenerateProgram(
	context.Context, *pulumirpc.GenerateProgramRequest,
) (*pulumirpc.GenerateProgramResponse, error) {
	return nil, unimplemented("does not generate programs (`pulumi convert`, `pulumi import --out`)")
}

func (h *host) GenerateProject(
	context.Context, *pulumirpc.GenerateProjectRequest,
) (*pulumirpc.GenerateProjectResponse, error) {
	return nil, unimplemented("does not generate projects (`pulumi convert`)")
}

func (h *host) GeneratePackage(
	context.Context, *pulumirpc.GeneratePackageRequest,
) (*pulumirpc.GeneratePackageResponse, error) {
	return nil, unimplemented("does not generate SDKs (`pulumi package gen-sdk`, `pulumi package add`); " +
		"install published SDKs from PyPI instead")
}

func (h *host) Pack(context.Context, *pulumirpc.PackRequest) (*pulumirpc.PackResponse, error) {
	return nil, unimplemented("does not pack SDKs into wheels")
}

func (h *host) Link(context.Context, *pulumirpc.LinkRequest) (*pulumirpc.LinkResponse, error) {
	return nil, unimplemented("does not link local SDKs into a project (`pulumi package add`)")
}
