// Command pulumi-tfgen-random writes the random package's Pulumi schema (schema.json) and the bridge's
// bridge-metadata.json from the ProviderInfo: `pulumi-tfgen-random schema --out DIR`. `make tools` runs
// it and embeds both files into pulumi-resource-random.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"
	"github.com/terraform-providers/terraform-provider-random/pulumibridge"
)

func main() {
	tfgen.Main("random", pulumibridge.Provider(nil))
}
