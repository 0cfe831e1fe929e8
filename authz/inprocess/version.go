package inprocess

import "runtime/debug"

// Version is the version of SpiceDB built into this binary, such as
// "v1.56.0" ("" when the binary carries no module information).
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range info.Deps {
		if m.Path == "github.com/authzed/spicedb" {
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return ""
}
