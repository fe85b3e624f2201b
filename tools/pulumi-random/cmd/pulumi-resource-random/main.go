// Command pulumi-resource-random is the random resource provider plugin, serving the schema and
// metadata that pulumi-tfgen-random generated into this directory (at build time; not checked in).
package main

import (
	"context"
	_ "embed"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/terraform-providers/terraform-provider-random/pulumibridge"
)

//go:embed schema.json
var schema []byte

//go:embed bridge-metadata.json
var metadata []byte

func main() {
	pf.Main(context.Background(), "random", pulumibridge.Provider(metadata), pf.ProviderMetadata{PackageSchema: schema})
}
