// Package policies embeds the assertion files of policies-test/ in the
// binary: the schema playground opens them as starting points, through the
// admin API (ListPolicyFiles, ReadPolicyFile).
package policies

import "embed"

// Files holds discord/*.yaml and features/*.yaml.
//
//go:embed discord/*.yaml features/*.yaml
var Files embed.FS
