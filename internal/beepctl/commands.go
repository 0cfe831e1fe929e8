package beepctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/beepchat/beep/authz/policytest"
	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
)

// commands are beepctl's commands and their subcommands (for help and
// completion).
var commands = []struct {
	name, args, help string
	subs             []string
}{
	{"schema", "show | validate FILE | diff FILE | apply FILE", "the running schema: show it, validate, compare or apply a schema file", []string{"show", "validate", "diff", "apply"}},
	{"rel", "read FILTER | write REL... | delete REL...|--filter FILTER", "relationships, in SpiceDB's text form", []string{"read", "write", "delete"}},
	{"check", "SUBJECT PERMISSION RESOURCE [--explain] [--at ZEDTOKEN]", "does SUBJECT hold PERMISSION on RESOURCE, and why", nil},
	{"lookup", "resources SUBJECT PERMISSION TYPE | subjects TYPE PERMISSION RESOURCE", "which resources a subject reaches, which subjects hold a permission", []string{"resources", "subjects"}},
	{"policies", "test [FILE|DIR...] [--remote]", "run assertion files (offline, the runner CI uses)", []string{"test"}},
	{"services", "status", "health and version of every service of the deployment", []string{"status"}},
	{"reconcile", "--check | --apply [SERVER_ID...]", "compare SpiceDB with the databases, or converge it", nil},
	{"events", "tail [--type TYPE] [--since ZEDTOKEN]", "follow relationship changes as they happen", []string{"tail"}},
	{"audit", "SERVER_ID [--actor USER] [--action ACTION] [--target ID]", "a server's audit log, newest first (needs view_audit_log there)", nil},
	{"server", "show SERVER_ID | delete SERVER_ID [--reason TEXT]", "any server, for platform staff; deleting it, for platform admins", []string{"show", "delete"}},
	{"user", "servers USER_ID", "the servers a user is in, for platform staff", []string{"servers"}},
	{"completion", "bash | zsh | fish", "print a shell completion script", []string{"bash", "zsh", "fish"}},
}

func (c *cli) help(w io.Writer) {
	fmt.Fprintln(w, "beepctl administers Beep's authorization graph through Beep's gateway.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: beepctl [--url URL] [--token TOKEN] [-o table|json] COMMAND ...")
	fmt.Fprintln(w)
	for _, cmd := range commands {
		fmt.Fprintf(w, "  %-10s %s\n  %-10s   %s\n", cmd.name, cmd.args, "", cmd.help)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "URL and token come from the flags, $BEEP_URL and $BEEP_TOKEN, or ~/.config/beepctl/config.yaml")
	fmt.Fprintln(w, "(url: ..., token: ...). Exit codes: 0 ok, 1 no (denied, failed, drift, differs, refused),")
	fmt.Fprintln(w, "2 usage, 3 unauthenticated or not allowed, 4 unavailable, 5 other errors. `beepctl COMMAND -h` for more.")
}

// run dispatches a command.
func (c *cli) run(ctx context.Context, args []string) error {
	// Options before the command.
	top := flag.NewFlagSet("beepctl", flag.ContinueOnError)
	top.Usage = func() { c.help(c.env.Stderr) }
	c.globals(top)
	top.SetOutput(c.env.Stderr)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: ExitUsage}
	}
	args = top.Args()
	if len(args) == 0 {
		c.help(c.env.Stderr)
		return &exitError{code: ExitUsage}
	}
	cmd, args := args[0], args[1:]
	sub := func() (string, []string, error) {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			return "", nil, usage("%s: which one? (%s)", cmd, subsOf(cmd))
		}
		return args[0], args[1:], nil
	}
	switch cmd {
	case "help":
		c.help(c.env.Stdout)
		return nil
	case "check":
		return c.check(ctx, args)
	case "reconcile":
		return c.reconcile(ctx, args)
	case "audit":
		return c.audit(ctx, args)
	case "schema", "rel", "lookup", "policies", "services", "events", "server", "user", "completion":
		name, rest, err := sub()
		if err != nil {
			return err
		}
		switch cmd + " " + name {
		case "schema show":
			return c.schemaShow(ctx, rest)
		case "schema validate":
			return c.schemaValidate(ctx, rest)
		case "schema diff":
			return c.schemaDiff(ctx, rest)
		case "schema apply":
			return c.schemaApply(ctx, rest)
		case "rel read":
			return c.relRead(ctx, rest)
		case "rel write":
			return c.relWrite(ctx, rest)
		case "rel delete":
			return c.relDelete(ctx, rest)
		case "lookup resources":
			return c.lookupResources(ctx, rest)
		case "lookup subjects":
			return c.lookupSubjects(ctx, rest)
		case "policies test":
			return c.policiesTest(ctx, rest)
		case "services status":
			return c.servicesStatus(ctx, rest)
		case "events tail":
			return c.eventsTail(ctx, rest)
		case "server show":
			return c.serverShow(ctx, rest)
		case "server delete":
			return c.serverDelete(ctx, rest)
		case "user servers":
			return c.userServers(ctx, rest)
		case "completion bash", "completion zsh", "completion fish":
			return c.completion(name)
		}
		return usage("%s %s: unknown (want %s)", cmd, name, subsOf(cmd))
	}
	return usage("unknown command %q (see beepctl help)", cmd)
}

func subsOf(cmd string) string {
	for _, c := range commands {
		if c.name == cmd {
			return strings.Join(c.subs, ", ")
		}
	}
	return ""
}

// flags is a command's flag set.
func (c *cli) flags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("beepctl "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(c.env.Stderr, "Usage: beepctl %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// prepare parses a command's flags and arguments, checks there are n
// positional ones (any number when n < 0), and makes the admin API's client.
func (c *cli) prepare(fs *flag.FlagSet, name string, args []string, n int) ([]string, adminv1connect.AuthzAdminServiceClient, error) {
	return prepareWith(c, fs, name, args, n, c.client)
}

// prepareCommunity is prepare for the commands of the community API.
func (c *cli) prepareCommunity(fs *flag.FlagSet, name string, args []string, n int) ([]string, communityv1connect.CommunityServiceClient, error) {
	return prepareWith(c, fs, name, args, n, c.communityClient)
}

func prepareWith[T any](c *cli, fs *flag.FlagSet, name string, args []string, n int, client func() (T, error)) ([]string, T, error) {
	var none T
	args, err := c.parse(fs, args)
	if err != nil {
		return nil, none, err
	}
	if n >= 0 {
		if err := want(name, args, n); err != nil {
			return nil, none, err
		}
	}
	cl, err := client()
	if err != nil {
		return nil, none, err
	}
	return args, cl, nil
}

// want checks the number of positional arguments.
func want(name string, args []string, n int) error {
	if len(args) != n {
		return usage("%s: want %d argument(s), got %d (see -h)", name, n, len(args))
	}
	return nil
}

// printJSON writes a message as JSON (proto field names, defaults shown).
func (c *cli) printJSON(m proto.Message) {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		fmt.Fprintln(c.env.Stderr, "beepctl:", err)
		return
	}
	fmt.Fprintln(c.env.Stdout, string(b))
}

// printJSONLine writes a message as one JSON line.
func (c *cli) printJSONLine(m proto.Message) {
	b, _ := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	fmt.Fprintln(c.env.Stdout, string(b))
}

func (c *cli) json() bool { return c.output == "json" }

// --- schema ---

func (c *cli) schemaShow(ctx context.Context, args []string) error {
	fs := c.flags("schema show", "")
	args, client, err := c.prepare(fs, "schema show", args, 0)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.ReadSchema(ctx, connect.NewRequest(&adminv1.ReadSchemaRequest{}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	fmt.Fprint(c.env.Stdout, resp.Msg.SchemaText)
	if !strings.HasSuffix(resp.Msg.SchemaText, "\n") {
		fmt.Fprintln(c.env.Stdout)
	}
	return nil
}

func (c *cli) schemaValidate(ctx context.Context, args []string) error {
	fs := c.flags("schema validate", "FILE [--offline]")
	offline := fs.Bool("offline", false, "validate here, without a server (the same SpiceDB code)")
	showWarnings := fs.Bool("warnings", false, "print SpiceDB's warnings too (their count otherwise)")
	args, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if err := want("schema validate", args, 1); err != nil {
		return err
	}
	text, err := c.readInput(args[0])
	if err != nil {
		return err
	}
	resp := &adminv1.ValidateSchemaResponse{}
	if *offline {
		errs, warnings, err := policytest.ValidateSchema(ctx, string(text))
		if err != nil {
			return err
		}
		resp.Valid = len(errs) == 0
		for _, p := range errs {
			resp.Errors = append(resp.Errors, &adminv1.SchemaProblem{Line: uint32(p.Line), Column: uint32(p.Column), Message: p.Message, Source: p.Source})
		}
		for _, p := range warnings {
			resp.Warnings = append(resp.Warnings, &adminv1.SchemaProblem{Line: uint32(p.Line), Column: uint32(p.Column), Message: p.Message, Source: p.Source, WarningName: p.Warning})
		}
	} else {
		client, err := c.client()
		if err != nil {
			return err
		}
		ctx, cancel := c.call(ctx)
		defer cancel()
		got, err := client.ValidateSchema(ctx, connect.NewRequest(&adminv1.ValidateSchemaRequest{SchemaText: string(text)}))
		if err != nil {
			return err
		}
		resp = got.Msg
	}
	if c.json() {
		c.printJSON(resp)
	} else {
		for _, p := range resp.Errors {
			fmt.Fprintf(c.env.Stdout, "%s:%d:%d: error: %s\n", args[0], p.Line, p.Column, p.Message)
		}
		if *showWarnings {
			for _, p := range resp.Warnings {
				fmt.Fprintf(c.env.Stdout, "%s:%d:%d: warning: %s (%s)\n", args[0], p.Line, p.Column, p.Message, p.WarningName)
			}
		}
		if resp.Valid {
			note := ""
			if n := len(resp.Warnings); n > 0 && !*showWarnings {
				note = fmt.Sprintf(" (%d warnings: --warnings to see them)", n)
			}
			fmt.Fprintf(c.env.Stdout, "%s: valid%s\n", args[0], note)
		}
	}
	if !resp.Valid {
		return no()
	}
	return nil
}

func (c *cli) schemaDiff(ctx context.Context, args []string) error {
	fs := c.flags("schema diff", "FILE")
	args, client, err := c.prepare(fs, "schema diff", args, 1)
	if err != nil {
		return err
	}
	text, err := c.readInput(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.DiffSchema(ctx, connect.NewRequest(&adminv1.DiffSchemaRequest{SchemaText: string(text)}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
	} else if resp.Msg.Identical {
		fmt.Fprintln(c.env.Stdout, "no difference: the running schema is the same")
	} else {
		printChanges(c.env.Stdout, resp.Msg.Changes)
		if resp.Msg.Breaking {
			fmt.Fprintln(c.env.Stdout, "\nbreaking: `schema apply` would refuse this schema")
		}
	}
	if !resp.Msg.Identical {
		return no() // like diff(1): 1 when they differ
	}
	return nil
}

func printChanges(w io.Writer, changes []*adminv1.SchemaChange) {
	t := newTable(w, "CHANGE", "WHAT", "BEFORE", "AFTER", "NOTE")
	for _, ch := range changes {
		what := ch.Definition
		if ch.Name != "" {
			what += "#" + ch.Name
		}
		note := ch.Reason
		if ch.Breaking {
			note = "BREAKING: " + note
		}
		kind := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(ch.Kind.String(), "KIND_"), "_", " "))
		t.row(kind, what, dash(ch.Before), dash(ch.After), note)
	}
	t.flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) schemaApply(ctx context.Context, args []string) error {
	fs := c.flags("schema apply", "FILE [--if-hash HASH]")
	ifHash := fs.String("if-hash", "", "apply only if the running schema still has this hash (from schema show -o json or diff)")
	args, client, err := c.prepare(fs, "schema apply", args, 1)
	if err != nil {
		return err
	}
	text, err := c.readInput(args[0])
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.ApplySchema(ctx, connect.NewRequest(&adminv1.ApplySchemaRequest{SchemaText: string(text), IfSchemaHash: *ifHash}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	if !resp.Msg.Written {
		fmt.Fprintln(c.env.Stdout, "unchanged: SpiceDB already runs this schema")
		return nil
	}
	printChanges(c.env.Stdout, resp.Msg.Changes)
	fmt.Fprintf(c.env.Stdout, "applied at %s\n", resp.Msg.ZedToken)
	return nil
}

// --- relationships ---

// parseFilter reads "type[:id][#relation][@subject_type[:id][#relation]]".
func parseFilter(s string) (*adminv1.RelationshipFilter, error) {
	resource, subject, hasSubject := strings.Cut(s, "@")
	f := &adminv1.RelationshipFilter{}
	obj, rel, _ := strings.Cut(resource, "#")
	f.ResourceType, f.ResourceId, _ = strings.Cut(obj, ":")
	f.Relation = rel
	if hasSubject {
		sobj, srel, _ := strings.Cut(subject, "#")
		f.SubjectType, f.SubjectId, _ = strings.Cut(sobj, ":")
		f.SubjectRelation = srel
		if f.SubjectType == "" {
			return nil, usage("filter %q: a subject type after @", s)
		}
	}
	if f.ResourceType == "" {
		return nil, usage("filter %q: want type[:id][#relation][@subject_type[:id][#relation]]", s)
	}
	return f, nil
}

func (c *cli) relRead(ctx context.Context, args []string) error {
	fs := c.flags("rel read", "FILTER   (type[:id][#relation][@subject_type[:id][#relation]])")
	at := fs.String("at", "", "read at least as fresh as this ZedToken")
	limit := fs.Int("limit", 0, "stop after this many (0: all)")
	args, client, err := c.prepare(fs, "rel read", args, 1)
	if err != nil {
		return err
	}
	filter, err := parseFilter(args[0])
	if err != nil {
		return err
	}
	out := &adminv1.ReadRelationshipsResponse{}
	req := &adminv1.ReadRelationshipsRequest{Filter: filter, AtZedToken: *at, PageSize: 1000}
	for {
		callCtx, cancel := c.call(ctx)
		resp, err := client.ReadRelationships(callCtx, connect.NewRequest(req))
		cancel()
		if err != nil {
			return err
		}
		out.Relationships = append(out.Relationships, resp.Msg.Relationships...)
		if *limit > 0 && len(out.Relationships) >= *limit {
			out.Relationships = out.Relationships[:*limit]
			break
		}
		if resp.Msg.NextPageToken == "" {
			break
		}
		req.PageToken = resp.Msg.NextPageToken
	}
	if c.json() {
		c.printJSON(out)
		return nil
	}
	for _, r := range out.Relationships {
		fmt.Fprintln(c.env.Stdout, r.Text)
	}
	return nil
}

// relArgs are the relationships given as arguments, or read one a line from
// --file ("-": standard input; "//" and "#" lines are comments).
func (c *cli) relArgs(args []string, file string) ([]string, error) {
	rels := append([]string(nil), args...)
	if file != "" {
		data, err := c.readInput(file)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "//") || strings.HasPrefix(line, "#") {
				continue
			}
			rels = append(rels, line)
		}
	}
	if len(rels) == 0 {
		return nil, usage("no relationship given")
	}
	return rels, nil
}

func (c *cli) relWrite(ctx context.Context, args []string) error {
	fs := c.flags("rel write", "REL... [-f FILE]   (type:id#relation@type:id[#relation][caveat:{context}][expiration:TIME])")
	file := fs.String("f", "", "read relationships from this file, one a line (- for standard input)")
	create := fs.Bool("create", false, "fail if any already exists, instead of touching it")
	args, client, err := c.prepare(fs, "rel write", args, -1)
	if err != nil {
		return err
	}
	rels, err := c.relArgs(args, *file)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.WriteRelationships(ctx, connect.NewRequest(&adminv1.WriteRelationshipsRequest{Relationships: rels, CreateOnly: *create}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	fmt.Fprintf(c.env.Stdout, "wrote %d at %s\n", resp.Msg.Written, resp.Msg.ZedToken)
	return nil
}

func (c *cli) relDelete(ctx context.Context, args []string) error {
	fs := c.flags("rel delete", "REL... | --filter FILTER")
	file := fs.String("f", "", "read relationships from this file, one a line (- for standard input)")
	filterText := fs.String("filter", "", "delete every relationship matching this filter instead")
	args, client, err := c.prepare(fs, "rel delete", args, -1)
	if err != nil {
		return err
	}
	req := &adminv1.DeleteRelationshipsRequest{}
	if *filterText != "" {
		if len(args) > 0 || *file != "" {
			return usage("rel delete: relationships or --filter, not both")
		}
		if req.Filter, err = parseFilter(*filterText); err != nil {
			return err
		}
	} else if req.Relationships, err = c.relArgs(args, *file); err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.DeleteRelationships(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	fmt.Fprintf(c.env.Stdout, "deleted at %s\n", resp.Msg.ZedToken)
	return nil
}

// --- checks and lookups ---

// subjectArg reads a subject; a bare id is a user.
func subjectArg(s string) string {
	if !strings.Contains(s, ":") {
		return "user:" + s
	}
	return s
}

// contextArg reads caveat context as a JSON object.
func contextArg(s string) (*structpb.Struct, error) {
	if s == "" {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, usage("--context: want a JSON object: %v", err)
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, usage("--context: %v", err)
	}
	return st, nil
}

func (c *cli) check(ctx context.Context, args []string) error {
	fs := c.flags("check", "SUBJECT PERMISSION RESOURCE [--explain] [--at ZEDTOKEN]   (user:bob send_messages channel:ID)")
	explain := fs.Bool("explain", false, "explain the answer as a tree")
	full := fs.Bool("full", false, "with --explain: every node, not only those that decide")
	at := fs.String("at", "", "answer at least as fresh as this ZedToken")
	caveat := fs.String("context", "", "caveat context, a JSON object")
	args, client, err := c.prepare(fs, "check", args, 3)
	if err != nil {
		return err
	}
	cctx, err := contextArg(*caveat)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	req := &adminv1.CheckRequest{Subject: subjectArg(args[0]), Permission: args[1], Resource: args[2], Context: cctx, AtZedToken: *at, Explain: *explain}
	resp, err := client.Check(ctx, connect.NewRequest(req))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
	} else {
		verdict := map[adminv1.CheckResult]string{
			adminv1.CheckResult_CHECK_RESULT_ALLOWED:  "allowed",
			adminv1.CheckResult_CHECK_RESULT_DENIED:   "denied",
			adminv1.CheckResult_CHECK_RESULT_CAVEATED: "caveated",
		}[resp.Msg.Result]
		line := fmt.Sprintf("%s: %s %s %s", verdict, req.Subject, req.Permission, req.Resource)
		if len(resp.Msg.MissingContext) > 0 {
			line += " (missing context: " + strings.Join(resp.Msg.MissingContext, ", ") + ")"
		}
		if e := resp.Msg.Explanation; e != nil && e.Reason != "" {
			line += ": " + e.Reason
		}
		fmt.Fprintln(c.env.Stdout, line)
		if resp.Msg.Explanation != nil {
			fmt.Fprintln(c.env.Stdout)
			printTree(c.env.Stdout, resp.Msg.Explanation, *full)
			fmt.Fprintf(c.env.Stdout, "\nchecked at %s\n", resp.Msg.CheckedAt)
		}
	}
	if resp.Msg.Result != adminv1.CheckResult_CHECK_RESULT_ALLOWED {
		return no()
	}
	return nil
}

func (c *cli) lookupResources(ctx context.Context, args []string) error {
	fs := c.flags("lookup resources", "SUBJECT PERMISSION RESOURCE_TYPE   (user:bob view_channel channel)")
	at := fs.String("at", "", "answer at least as fresh as this ZedToken")
	caveat := fs.String("context", "", "caveat context, a JSON object")
	limit := fs.Int("limit", 0, "stop after this many (0: all)")
	args, client, err := c.prepare(fs, "lookup resources", args, 3)
	if err != nil {
		return err
	}
	cctx, err := contextArg(*caveat)
	if err != nil {
		return err
	}
	out := &adminv1.LookupResourcesResponse{}
	req := &adminv1.LookupResourcesRequest{Subject: subjectArg(args[0]), Permission: args[1], ResourceType: args[2], Context: cctx, AtZedToken: *at, PageSize: 1000}
	for {
		callCtx, cancel := c.call(ctx)
		resp, err := client.LookupResources(callCtx, connect.NewRequest(req))
		cancel()
		if err != nil {
			return err
		}
		out.Resources = append(out.Resources, resp.Msg.Resources...)
		if (*limit > 0 && len(out.Resources) >= *limit) || resp.Msg.NextPageToken == "" {
			break
		}
		req.PageToken = resp.Msg.NextPageToken
	}
	if *limit > 0 && len(out.Resources) > *limit {
		out.Resources = out.Resources[:*limit]
	}
	if c.json() {
		c.printJSON(out)
		return nil
	}
	for _, f := range out.Resources {
		line := args[2] + ":" + f.Id
		if f.Caveated {
			line += "  (caveated)"
		}
		fmt.Fprintln(c.env.Stdout, line)
	}
	return nil
}

func (c *cli) lookupSubjects(ctx context.Context, args []string) error {
	fs := c.flags("lookup subjects", "SUBJECT_TYPE PERMISSION RESOURCE   (user view_channel channel:ID)")
	at := fs.String("at", "", "answer at least as fresh as this ZedToken")
	args, client, err := c.prepare(fs, "lookup subjects", args, 3)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.LookupSubjects(ctx, connect.NewRequest(&adminv1.LookupSubjectsRequest{SubjectType: args[0], Permission: args[1], Resource: args[2], AtZedToken: *at}))
	if err != nil {
		return err
	}
	if c.json() {
		c.printJSON(resp.Msg)
		return nil
	}
	if resp.Msg.Everyone {
		line := args[0] + ":*  (everyone)"
		if len(resp.Msg.Excluded) > 0 {
			var ex []string
			for _, f := range resp.Msg.Excluded {
				ex = append(ex, f.Id)
			}
			line += " except " + strings.Join(ex, ", ")
		}
		fmt.Fprintln(c.env.Stdout, line)
	}
	for _, f := range resp.Msg.Subjects {
		line := f.Id
		if f.Caveated {
			line += "  (caveated)"
		}
		fmt.Fprintln(c.env.Stdout, line)
	}
	return nil
}

// --- policies ---

func (c *cli) policiesTest(ctx context.Context, args []string) error {
	fs := c.flags("policies test", "[FILE|DIR...] [--remote]   (default: ./policies-test)")
	remote := fs.Bool("remote", false, "run on the server, against its running schema when a file has no inline one")
	args, err := c.parse(fs, args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		if _, err := os.Stat("policies-test"); err != nil {
			return usage("policies test: name files or directories (no ./policies-test here)")
		}
		args = []string{"policies-test"}
	}
	var files []string
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil {
			return usage("%v", err)
		}
		if !info.IsDir() {
			files = append(files, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
				files = append(files, p)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	var reports []*adminv1.RunPoliciesResponse
	for _, f := range files {
		var r *adminv1.RunPoliciesResponse
		if *remote {
			r, err = c.runRemote(ctx, f)
		} else {
			r, err = runLocal(ctx, f)
		}
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	failed, assertions := 0, 0
	for _, r := range reports {
		assertions += int(r.Assertions)
		if !r.Passed {
			failed++
		}
		if c.json() {
			continue
		}
		if r.Passed {
			fmt.Fprintf(c.env.Stdout, "ok    %s (%d assertions, %d expected relations)\n", r.FileName, r.Assertions, r.ExpectedRelations)
			continue
		}
		fmt.Fprintf(c.env.Stdout, "FAIL  %s\n", r.FileName)
		for _, f := range r.Failures {
			loc := r.FileName
			if f.Line > 0 {
				loc = fmt.Sprintf("%s:%d", loc, f.Line)
				if f.Column > 0 {
					loc = fmt.Sprintf("%s:%d", loc, f.Column)
				}
			}
			msg := f.Message
			if f.Context != "" && !strings.Contains(msg, f.Context) {
				msg += " [" + f.Context + "]"
			}
			fmt.Fprintf(c.env.Stdout, "      %s: %s: %s\n", loc, f.Kind, msg)
		}
	}
	if c.json() {
		for _, r := range reports {
			c.printJSONLine(r)
		}
	} else {
		fmt.Fprintf(c.env.Stdout, "%d files, %d assertions, %d failed\n", len(reports), assertions, failed)
	}
	if failed > 0 {
		return no()
	}
	return nil
}

// runLocal runs a file with authz/policytest, as CI does.
func runLocal(ctx context.Context, file string) (*adminv1.RunPoliciesResponse, error) {
	r, err := policytest.RunFile(ctx, file)
	if err != nil {
		return nil, err
	}
	out := &adminv1.RunPoliciesResponse{FileName: file, Passed: r.OK(), Assertions: uint32(r.Assertions),
		ExpectedRelations: uint32(r.ExpectedRelations), GeneratedExpectedRelations: r.Generated}
	for _, f := range r.Failures {
		out.Failures = append(out.Failures, &adminv1.PolicyFailure{Line: uint32(f.Line), Column: uint32(f.Column), Kind: f.Kind, Message: f.Message, Context: f.Context})
	}
	return out, nil
}

// runRemote runs a file on the server.
func (c *cli) runRemote(ctx context.Context, file string) (*adminv1.RunPoliciesResponse, error) {
	data, err := c.readInput(file)
	if err != nil {
		return nil, err
	}
	client, err := c.client()
	if err != nil {
		return nil, err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.RunPolicies(ctx, connect.NewRequest(&adminv1.RunPoliciesRequest{FileName: file, Content: string(data)}))
	if err != nil {
		return nil, err
	}
	return resp.Msg, nil
}

// --- operations ---

func (c *cli) servicesStatus(ctx context.Context, args []string) error {
	fs := c.flags("services status", "")
	args, client, err := c.prepare(fs, "services status", args, 0)
	if err != nil {
		return err
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	resp, err := client.ServicesStatus(ctx, connect.NewRequest(&adminv1.ServicesStatusRequest{}))
	if err != nil {
		return err
	}
	down := false
	for _, s := range resp.Msg.Services {
		down = down || s.Health == adminv1.ServiceStatus_HEALTH_NOT_SERVING
	}
	if c.json() {
		c.printJSON(resp.Msg)
	} else {
		t := newTable(c.env.Stdout, "SERVICE", "HEALTH", "VERSION", "DETAIL")
		for _, s := range resp.Msg.Services {
			health := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(s.Health.String(), "HEALTH_"), "_", " "))
			t.row(s.Name, health, dash(s.Version), s.Detail)
		}
		t.flush()
	}
	if down {
		return no()
	}
	return nil
}

func (c *cli) reconcile(ctx context.Context, args []string) error {
	fs := c.flags("reconcile", "--check | --apply [SERVER_ID...]")
	check := fs.Bool("check", false, "report drift without changing anything (exit 1 when there is drift)")
	apply := fs.Bool("apply", false, "converge SpiceDB to the databases")
	args, client, err := c.prepare(fs, "reconcile", args, -1)
	if err != nil {
		return err
	}
	if *check == *apply {
		return usage("reconcile: --check or --apply")
	}
	ctx, cancel := c.call(ctx)
	defer cancel()
	var drift []*adminv1.Drift
	if *check {
		resp, err := client.CheckDrift(ctx, connect.NewRequest(&adminv1.CheckDriftRequest{ServerIds: args}))
		if err != nil {
			return err
		}
		if c.json() {
			c.printJSON(resp.Msg)
		}
		drift = resp.Msg.Drift
	} else {
		resp, err := client.Reconcile(ctx, connect.NewRequest(&adminv1.ReconcileRequest{ServerIds: args}))
		if err != nil {
			return err
		}
		if c.json() {
			c.printJSON(resp.Msg)
		}
		drift = resp.Msg.Reconciled
	}
	if !c.json() {
		for _, d := range drift {
			fmt.Fprintf(c.env.Stdout, "server %s: %d missing, %d extra\n", d.ServerId, len(d.Missing), len(d.Extra))
			for _, r := range d.Missing {
				fmt.Fprintf(c.env.Stdout, "  + %s\n", r)
			}
			for _, r := range d.Extra {
				fmt.Fprintf(c.env.Stdout, "  - %s\n", r)
			}
		}
		switch {
		case len(drift) == 0:
			fmt.Fprintln(c.env.Stdout, "no drift: SpiceDB agrees with the database")
		case *apply:
			fmt.Fprintf(c.env.Stdout, "reconciled %d servers\n", len(drift))
		}
	}
	if *check && len(drift) > 0 {
		return no()
	}
	return nil
}

func (c *cli) eventsTail(ctx context.Context, args []string) error {
	fs := c.flags("events tail", "[--type TYPE]... [--since ZEDTOKEN] [--max N]")
	var types multiFlag
	fs.Var(&types, "type", "only relationships of this definition (repeatable)")
	since := fs.String("since", "", "start after this ZedToken (default: now)")
	maxChanges := fs.Int("max", 0, "stop after this many changes (0: until interrupted)")
	args, client, err := c.prepare(fs, "events tail", args, 0)
	if err != nil {
		return err
	}
	stream, err := client.WatchRelationships(ctx, connect.NewRequest(&adminv1.WatchRelationshipsRequest{ResourceTypes: types, SinceZedToken: *since}))
	if err != nil {
		return err
	}
	defer stream.Close()
	seen := 0
	for stream.Receive() {
		msg := stream.Msg()
		for _, ch := range msg.Changes {
			if c.json() {
				c.printJSONLine(&adminv1.WatchRelationshipsResponse{Changes: []*adminv1.RelationshipChange{ch}, ChangesThrough: msg.ChangesThrough})
			} else {
				op := strings.ToLower(strings.TrimPrefix(ch.Operation.String(), "OPERATION_"))
				fmt.Fprintf(c.env.Stdout, "%-6s %s\n", op, ch.Relationship.Text)
			}
			if seen++; *maxChanges > 0 && seen >= *maxChanges {
				return nil
			}
		}
	}
	if err := stream.Err(); err != nil && ctx.Err() == nil {
		return watchError(err)
	}
	return nil
}

// watchError says what to do when SpiceDB cannot watch: its PostgreSQL
// datastore finds a revision's changes in the order of their commit
// timestamps (pg_xact_commit_timestamp), which PostgreSQL keeps only with
// track_commit_timestamp on. That setting is server-wide and takes a
// restart, and SpiceDB reads it once, when it starts: nothing a client or a
// single database can turn on.
func watchError(err error) error {
	if !strings.Contains(err.Error(), "track_commit_timestamp") {
		return err
	}
	return &exitError{code: ExitNo, msg: "events tail: SpiceDB cannot watch: its PostgreSQL datastore needs PostgreSQL's track_commit_timestamp = on " +
		"(it orders changes by commit time), and that server-wide setting is off. To turn it on, as a PostgreSQL superuser: " +
		"`psql -c 'ALTER SYSTEM SET track_commit_timestamp = on'`, restart PostgreSQL (`pg_ctlcluster <version> main restart` or " +
		"`systemctl restart postgresql`), then restart Beep (SpiceDB reads the setting when it starts). " +
		"In development, `beep serve -spicedb-engine memory` watches without it."}
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
