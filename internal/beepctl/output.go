package beepctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	adminv1 "github.com/beepchat/beep/gen/beep/admin/v1"
)

// table writes aligned columns.
type table struct{ w *tabwriter.Writer }

func newTable(w io.Writer, headers ...string) *table {
	t := &table{w: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t *table) row(cells ...string) { fmt.Fprintln(t.w, strings.Join(cells, "\t")) }
func (t *table) flush()              { _ = t.w.Flush() }

// marks of the explanation tree.
func mark(r adminv1.ExplainNode_Result) string {
	switch r {
	case adminv1.ExplainNode_RESULT_HOLDS:
		return "✓"
	case adminv1.ExplainNode_RESULT_DOES_NOT_HOLD:
		return "✗"
	case adminv1.ExplainNode_RESULT_CAVEATED:
		return "?"
	}
	return "·"
}

// printTree prints an explanation. Unless full, only the nodes that decide
// are shown: the terms of a union that grant it, the terms of an
// intersection that fail, an exclusion's base and what removes it; nodes
// SpiceDB did not evaluate are left out.
func printTree(w io.Writer, root *adminv1.ExplainNode, full bool) {
	fmt.Fprintf(w, "%s %s\n", mark(root.Result), label(root))
	printChildren(w, root, "", full)
}

func printChildren(w io.Writer, n *adminv1.ExplainNode, prefix string, full bool) {
	children := n.Children
	if !full {
		children = deciding(n)
	}
	for i, ch := range children {
		branch, next := "├─ ", "│  "
		if i == len(children)-1 {
			branch, next = "└─ ", "   "
		}
		// A check's expression, or an operand's only check, goes on one line.
		if only := single(ch, full); only != nil {
			fmt.Fprintf(w, "%s%s%s %s → %s\n", prefix, branch, mark(ch.Result), ch.Expression, label(only))
			ch = only
		} else {
			fmt.Fprintf(w, "%s%s%s %s\n", prefix, branch, mark(ch.Result), label(ch))
		}
		for _, r := range ch.Relationships {
			fmt.Fprintf(w, "%s%s    ⇒ %s\n", prefix, next, r)
		}
		printChildren(w, ch, prefix+next, full)
	}
}

// single is the one child shown below an operand, if there is exactly one.
func single(n *adminv1.ExplainNode, full bool) *adminv1.ExplainNode {
	if n.Kind != adminv1.ExplainNode_KIND_COMPUTED && n.Kind != adminv1.ExplainNode_KIND_ARROW {
		return nil
	}
	children := n.Children
	if !full {
		children = deciding(n)
	}
	if len(children) == 1 && children[0].Kind == adminv1.ExplainNode_KIND_CHECK {
		return children[0]
	}
	return nil
}

// label describes a node on its line.
func label(n *adminv1.ExplainNode) string {
	var s string
	switch n.Kind {
	case adminv1.ExplainNode_KIND_CHECK:
		s = n.Resource + "#" + n.Relation
		if n.IsPermission {
			s += " = " + shorten(n.Expression)
		}
	case adminv1.ExplainNode_KIND_UNION, adminv1.ExplainNode_KIND_INTERSECTION, adminv1.ExplainNode_KIND_EXCLUSION:
		s = shorten(n.Expression)
	default:
		s = n.Expression
	}
	if n.Reason != "" {
		s += "  — " + n.Reason
	}
	if n.Cached {
		s += "  [cached]"
	}
	if c := n.Caveat; c != nil {
		s += fmt.Sprintf("  [caveat %s: %s", c.Name, c.Expression)
		if len(c.MissingContext) > 0 {
			s += ", missing " + strings.Join(c.MissingContext, ", ")
		}
		s += "]"
	}
	return s
}

// shorten keeps long expressions readable on one line.
func shorten(s string) string {
	const max = 90
	if len([]rune(s)) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

// deciding are the children of n that decide its result.
func deciding(n *adminv1.ExplainNode) []*adminv1.ExplainNode {
	holds := func(c *adminv1.ExplainNode) bool {
		return c.Result == adminv1.ExplainNode_RESULT_HOLDS || c.Result == adminv1.ExplainNode_RESULT_CAVEATED
	}
	fails := func(c *adminv1.ExplainNode) bool { return c.Result == adminv1.ExplainNode_RESULT_DOES_NOT_HOLD }
	var out []*adminv1.ExplainNode
	keep := func(pred func(*adminv1.ExplainNode) bool, cs []*adminv1.ExplainNode) {
		for _, c := range cs {
			if pred(c) {
				out = append(out, c)
			}
		}
	}
	switch n.Kind {
	case adminv1.ExplainNode_KIND_UNION, adminv1.ExplainNode_KIND_COMPUTED, adminv1.ExplainNode_KIND_ARROW:
		if holds(n) {
			keep(holds, n.Children)
		} else {
			keep(fails, n.Children)
		}
	case adminv1.ExplainNode_KIND_INTERSECTION:
		if fails(n) {
			keep(fails, n.Children)
		} else {
			keep(holds, n.Children)
		}
	case adminv1.ExplainNode_KIND_EXCLUSION:
		if len(n.Children) == 0 {
			return nil
		}
		out = append(out, n.Children[0])
		if holds(n.Children[0]) {
			keep(holds, n.Children[1:])
		}
	case adminv1.ExplainNode_KIND_CHECK:
		if n.IsPermission {
			keep(func(c *adminv1.ExplainNode) bool { return c.Result != adminv1.ExplainNode_RESULT_NOT_EVALUATED }, n.Children)
		} else if holds(n) {
			keep(holds, n.Children)
		}
	default:
		keep(func(c *adminv1.ExplainNode) bool { return c.Result != adminv1.ExplainNode_RESULT_NOT_EVALUATED }, n.Children)
	}
	return out
}

// completion prints a shell completion script.
func (c *cli) completion(shell string) error {
	var names []string
	for _, cmd := range commands {
		names = append(names, cmd.name)
	}
	w := c.env.Stdout
	switch shell {
	case "bash":
		fmt.Fprintln(w, "# beepctl completion for bash: source <(beepctl completion bash)")
		fmt.Fprintln(w, "_beepctl() {")
		fmt.Fprintln(w, `  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}`)
		fmt.Fprintln(w, `  if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W "`+strings.Join(names, " ")+` help" -- "$cur")); return; fi`)
		fmt.Fprintln(w, `  if [[ $COMP_CWORD -eq 2 ]]; then`)
		fmt.Fprintln(w, `    case $cmd in`)
		for _, cmd := range commands {
			if len(cmd.subs) > 0 {
				fmt.Fprintf(w, "      %s) COMPREPLY=($(compgen -W \"%s\" -- \"$cur\")); return;;\n", cmd.name, strings.Join(cmd.subs, " "))
			}
		}
		fmt.Fprintln(w, `    esac`)
		fmt.Fprintln(w, `  fi`)
		fmt.Fprintln(w, `  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "--url --token --config -o --timeout --explain --at --context --check --apply --remote --offline --filter --type --since --max --limit --create --full --actor --action --target --reason" -- "$cur")); return; fi`)
		fmt.Fprintln(w, `  COMPREPLY=($(compgen -f -- "$cur"))`)
		fmt.Fprintln(w, "}")
		fmt.Fprintln(w, "complete -F _beepctl beepctl")
	case "zsh":
		fmt.Fprintln(w, "#compdef beepctl")
		fmt.Fprintln(w, "# beepctl completion for zsh: source <(beepctl completion zsh)")
		fmt.Fprintln(w, "_beepctl() {")
		fmt.Fprintln(w, "  local -a cmds")
		fmt.Fprint(w, "  cmds=(")
		for _, cmd := range commands {
			fmt.Fprintf(w, "'%s:%s' ", cmd.name, strings.ReplaceAll(cmd.help, "'", ""))
		}
		fmt.Fprintln(w, ")")
		fmt.Fprintln(w, "  if (( CURRENT == 2 )); then _describe 'command' cmds; return; fi")
		fmt.Fprintln(w, "  if (( CURRENT == 3 )); then")
		fmt.Fprintln(w, "    case ${words[2]} in")
		for _, cmd := range commands {
			if len(cmd.subs) > 0 {
				fmt.Fprintf(w, "      %s) compadd %s; return;;\n", cmd.name, strings.Join(cmd.subs, " "))
			}
		}
		fmt.Fprintln(w, "    esac")
		fmt.Fprintln(w, "  fi")
		fmt.Fprintln(w, "  _files")
		fmt.Fprintln(w, "}")
		fmt.Fprintln(w, "compdef _beepctl beepctl")
	case "fish":
		fmt.Fprintln(w, "# beepctl completion for fish: beepctl completion fish | source")
		fmt.Fprintln(w, "complete -c beepctl -f")
		for _, cmd := range commands {
			fmt.Fprintf(w, "complete -c beepctl -n __fish_use_subcommand -a %s -d '%s'\n", cmd.name, strings.ReplaceAll(cmd.help, "'", ""))
			if len(cmd.subs) > 0 {
				fmt.Fprintf(w, "complete -c beepctl -n '__fish_seen_subcommand_from %s' -a '%s'\n", cmd.name, strings.Join(cmd.subs, " "))
			}
		}
		for _, f := range []string{"url", "token", "config", "output", "timeout", "explain", "at", "context", "check", "apply", "remote", "offline", "filter", "type", "since", "max", "limit", "actor", "action", "target", "reason"} {
			fmt.Fprintf(w, "complete -c beepctl -l %s\n", f)
		}
		fmt.Fprintln(w, "complete -c beepctl -n '__fish_seen_subcommand_from validate diff apply test' -F")
	}
	return nil
}
