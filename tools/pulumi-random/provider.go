// Package pulumibridge is prenv's own Pulumi bridge for terraform-provider-random: the ProviderInfo that
// maps the Terraform provider onto the `random` Pulumi package, shared by the schema generator
// (cmd/pulumi-tfgen-random) and the provider plugin (cmd/pulumi-resource-random).
//
// Why it exists: upstream's github.com/pulumi/pulumi-random/provider/v4 has no version the module proxy
// we can reach serves, but the Terraform provider, the bridge and the framework are served. The module
// path sits under the Terraform provider's (github.com/terraform-providers/terraform-provider-random/...)
// because that is the only way Go lets us import its internal/provider package.
package pulumibridge

import (
	"context"
	"errors"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// Version is the plugin version, set at build time to the pulumi-random pin:
// -X github.com/terraform-providers/terraform-provider-random/pulumibridge.Version=4.21.4
var Version = "0.0.0-dev"

// Provider is the bridge's description of the random package. metadata is bridge-metadata.json as
// tfgen wrote it (nil when generating it).
func Provider(metadata []byte) tfbridge.ProviderInfo {
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(provider.New()),
		Name:         "random",
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		Keywords:     []string{"pulumi", "random"},
		License:      "Apache-2.0",
		Homepage:     "https://pulumi.io",
		Repository:   "https://github.com/pulumi/pulumi-random",
		Version:      Version,
		MetadataInfo: tfbridge.NewProviderMetadata(metadata),
		Resources: map[string]*tfbridge.ResourceInfo{
			// random_bytes has no id attribute; upstream uses the value itself.
			"random_bytes": {ComputeID: computeRandomBytesID},
		},
		Python: &tfbridge.PythonInfo{RespectSchemaVersion: true},
	}
	// random_<name> -> random:index/random<Name>:Random<Name>, the tokens the PyPI SDK registers.
	makeToken := func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", makeToken))
	info.MustApplyAutoAliases()
	return info
}

func computeRandomBytesID(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
	b, ok := state["base64"]
	if !ok {
		return "", errors.New("random_bytes state has no base64 property")
	}
	if b.IsSecret() {
		b = b.SecretValue().Element
	}
	if !b.IsString() {
		return "", errors.New("random_bytes base64 property is not a string")
	}
	return resource.ID(b.StringValue()), nil
}
