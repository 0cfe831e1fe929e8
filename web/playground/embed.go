// Package playground embeds the built schema playground (dist/, made by
// `npm ci && npm run build` in this folder from src/, and committed like
// gen/: scripts/check-generated fails when it is stale). Beep serves it at
// /playground/ (cmd/beep/playground.go).
package playground

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files is the built bundle: index.html and assets/.
func Files() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	return sub
}
