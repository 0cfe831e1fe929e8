// Command zedgen writes schema/beep.zed, Beep's SpiceDB schema, from the
// Discord permission table in permissions.go and the template beep.zed.tmpl.
//
// The per-permission parts of the schema (six overwrite relations and one
// resolution chain per overwritable permission, on categories and channels)
// are generated so that every permission follows exactly the same rules;
// everything else is written by hand in the template.
//
// Usage: go run ./schema/zedgen [-check] [-out schema/beep.zed]
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/template"
)

//go:embed beep.zed.tmpl
var schemaTemplate string

func main() {
	out := flag.String("out", "schema/beep.zed", "file to write")
	check := flag.Bool("check", false, "fail if the file differs from what would be written")
	flag.Parse()

	rendered, err := render()
	if err != nil {
		fmt.Fprintln(os.Stderr, "zedgen:", err)
		os.Exit(1)
	}
	if *check {
		current, err := os.ReadFile(*out)
		if err != nil || !bytes.Equal(current, rendered) {
			fmt.Fprintf(os.Stderr, "zedgen: %s is stale; run `make generate`\n", *out)
			os.Exit(1)
		}
		return
	}
	if err := os.WriteFile(*out, rendered, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "zedgen:", err)
		os.Exit(1)
	}
}

func render() ([]byte, error) {
	tmpl, err := template.New("beep.zed").Funcs(template.FuncMap{
		"overwritable":     func() []Permission { return filter(func(p Permission) bool { return p.Overwritable }) },
		"all":              func() []Permission { return permissions },
		"chain":            chain,
		"granted":          granted,
		"gated":            gated,
		"serverPermission": serverPermission,
	}).Parse(schemaTemplate)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func filter(keep func(Permission) bool) []Permission {
	var out []Permission
	for _, p := range permissions {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// chain is Discord's overwrite resolution for one permission, as a SpiceDB
// expression over the overwrites of the object that holds them (a category,
// or a channel): start from the server base (every role grant, @everyone
// included), then apply the @everyone overwrite (deny, then allow), then all
// of the member's role overwrites together (union of denies, then union of
// allows), then the member's own overwrite. A channel reaches its holder with
// one arrow (overwrites_from->chain_<p>), so the six relations are read on
// the holder in one dispatch rather than through six arrows.
func chain(p Permission) string {
	n := p.Name
	expr := "server->grant_" + n
	for _, target := range []string{"everyone", "role", "member"} {
		expr = fmt.Sprintf("((%s - %s_deny_%s) + %s_allow_%s)", expr, target, n, target, n)
	}
	return expr
}

// granted is the permission after base, administrator, overwrites and
// timeout, but before the implicit prerequisite rules. Threads build on it.
// overwritten is the permission holding the overwrite chain's result.
func granted(p Permission, overwritten string) string {
	var b strings.Builder
	b.WriteString("server->administrator")
	if p.Staff {
		b.WriteString(" + server->staff_moderator")
	}
	member := fmt.Sprintf("(server->member & %s)", overwritten)
	if p.KeptWhileTimedOut {
		b.WriteString(" + " + member)
	} else {
		b.WriteString(fmt.Sprintf(" + (%s - server->timed_out)", member))
	}
	return b.String()
}

// gated applies the implicit prerequisite rule.
func gated(p Permission) string {
	if p.Requires == NoPrerequisite {
		return "granted_" + p.Name
	}
	return fmt.Sprintf("%s & granted_%s", p.Requires, p.Name)
}

// serverPermission is the server-wide (base) form of a permission.
func serverPermission(p Permission) string {
	if p.Name == "administrator" {
		return "owner + (grant_administrator & member)"
	}
	var b strings.Builder
	b.WriteString("administrator")
	if p.Staff {
		b.WriteString(" + staff_moderator")
	}
	if p.KeptWhileTimedOut {
		fmt.Fprintf(&b, " + (grant_%s & member)", p.Name)
	} else {
		fmt.Fprintf(&b, " + ((grant_%s & member) - timed_out)", p.Name)
	}
	return b.String()
}
