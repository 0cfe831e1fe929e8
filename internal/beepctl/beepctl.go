// Package beepctl is the command-line client of Beep's authorization
// administration (cmd/beepctl): it talks to a running Beep through the
// gateway with the generated Connect clients of beep.admin.v1, and runs
// assertion files offline with the runner CI uses (authz/policytest).
//
// Exit codes:
//
//	0  done; allowed; no drift; no difference; every assertion passed
//	1  the answer is no: check denied (or caveated), assertions failed,
//	   schema invalid, drift found, schemas differ, a change refused,
//	   a service not serving
//	2  usage error: bad flags or arguments, or a request the server
//	   found invalid
//	3  not signed in, or not allowed (unauthenticated, permission denied)
//	4  the server is unavailable (unreachable, timed out, unavailable)
//	5  any other error
package beepctl

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	"github.com/beepchat/beep/gen/beep/community/v1/communityv1connect"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitNo          = 1
	ExitUsage       = 2
	ExitDenied      = 3
	ExitUnavailable = 4
	ExitError       = 5
)

// DefaultURL is where beepctl looks for Beep unless told.
const DefaultURL = "http://127.0.0.1:8080"

// Env is what beepctl runs with: its streams, its environment, and the HTTP
// client it reaches Beep with.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (os.Getenv when nil).
	Getenv func(string) string
	// HTTPClient reaches Beep (a default one when nil).
	HTTPClient *http.Client
}

// Main runs beepctl as a process does: os streams and environment.
func Main(ctx context.Context, args []string) int {
	return Run(ctx, args, Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
}

// Run runs beepctl with args (without the program's name) and returns its
// exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	c := &cli{env: env}
	err := c.run(ctx, args)
	if err == nil {
		return ExitOK
	}
	var ex *exitError
	if errors.As(err, &ex) {
		if ex.msg != "" {
			fmt.Fprintln(env.Stderr, "beepctl:", ex.msg)
		}
		return ex.code
	}
	code, msg := classify(err)
	fmt.Fprintln(env.Stderr, "beepctl:", msg)
	return code
}

// exitError ends beepctl with a code (and a message for stderr, if any).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usage is an ExitUsage error.
func usage(format string, args ...any) error {
	return &exitError{code: ExitUsage, msg: fmt.Sprintf(format, args...)}
}

// no is an ExitNo ending, its message already printed (or none).
func no() error { return &exitError{code: ExitNo} }

// classify maps an error to an exit code and a message.
func classify(err error) (int, string) {
	var cerr *connect.Error
	if !errors.As(err, &cerr) {
		if errors.Is(err, context.DeadlineExceeded) {
			return ExitUnavailable, err.Error()
		}
		return ExitError, err.Error()
	}
	msg := cerr.Message()
	switch cerr.Code() {
	case connect.CodeUnauthenticated:
		return ExitDenied, "not signed in (" + msg + "): give a token with --token, $BEEP_TOKEN or the config file"
	case connect.CodePermissionDenied:
		return ExitDenied, "not allowed: " + msg
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return ExitUnavailable, "Beep is unavailable: " + msg
	case connect.CodeInvalidArgument:
		return ExitUsage, "invalid request: " + msg
	case connect.CodeFailedPrecondition, connect.CodeAborted:
		return ExitNo, "refused: " + msg
	case connect.CodeUnimplemented:
		return ExitError, "not offered by this Beep: " + msg
	}
	return ExitError, cerr.Code().String() + ": " + msg
}

// cli is one run of beepctl.
type cli struct {
	env Env
	// Global options.
	url, token, config, output, zed string
	timeout                         time.Duration
}

// globals registers the options every command takes.
// Given before the command and again after it, they keep the first values
// unless given again.
func (c *cli) globals(fs *flag.FlagSet) {
	if c.output == "" {
		c.output = "table"
	}
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	fs.StringVar(&c.url, "url", c.url, "Beep's URL, the gateway (default $BEEP_URL, the config file, or "+DefaultURL+")")
	fs.StringVar(&c.token, "token", c.token, "a Kratos session token or a bearer token (default $BEEP_TOKEN or the config file)")
	fs.StringVar(&c.config, "config", c.config, "config file (default $BEEPCTL_CONFIG or ~/.config/beepctl/config.yaml)")
	fs.StringVar(&c.output, "o", c.output, "output: table or json")
	fs.StringVar(&c.output, "output", c.output, "output: table or json")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "how long a request may take")
	fs.StringVar(&c.zed, "zed-token", c.zed, "a ZedToken (of a write): your own permissions are then checked at least as fresh (default $BEEP_ZED_TOKEN)")
}

// parse parses a command's flags and positional arguments, in any order.
func (c *cli) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	c.globals(fs)
	fs.SetOutput(c.env.Stderr)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &exitError{code: ExitOK}
			}
			return nil, &exitError{code: ExitUsage}
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if c.output != "table" && c.output != "json" {
		return nil, usage("-o %q: want table or json", c.output)
	}
	return positional, nil
}

// settings is the connection configuration a config file may hold.
type settings struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// configPath is the config file to read: --config, $BEEPCTL_CONFIG, or
// the first of config.yaml, config.yml, config.json in
// $XDG_CONFIG_HOME/beepctl (~/.config/beepctl).
func (c *cli) configPath() (string, bool) {
	if c.config != "" {
		return c.config, true
	}
	if p := c.env.Getenv("BEEPCTL_CONFIG"); p != "" {
		return p, true
	}
	dir := c.env.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := c.env.Getenv("HOME")
		if home == "" {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	for _, name := range []string{"config.yaml", "config.yml", "config.json"} {
		p := filepath.Join(dir, "beepctl", name)
		if _, err := os.Stat(p); err == nil {
			return p, false
		}
	}
	return "", false
}

// readSettings reads a config file: JSON ({"url": ..., "token": ...}), or
// YAML's simplest form, one "key: value" a line ("#" starts a comment).
func readSettings(path string) (settings, error) {
	var s settings
	data, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if trimmed := strings.TrimSpace(string(data)); strings.HasPrefix(trimmed, "{") {
		if err := json.Unmarshal(data, &s); err != nil {
			return s, fmt.Errorf("%s: %w", path, err)
		}
		return s, nil
	}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "---" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return s, fmt.Errorf("%s:%d: want key: value", path, n+1)
		}
		value = strings.TrimSpace(value)
		if i := strings.Index(value, " #"); i >= 0 && !strings.HasPrefix(value, `"`) && !strings.HasPrefix(value, "'") {
			value = strings.TrimSpace(value[:i])
		}
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		switch strings.TrimSpace(key) {
		case "url":
			s.URL = value
		case "token":
			s.Token = value
		default:
			return s, fmt.Errorf("%s:%d: unknown key %q (want url or token)", path, n+1, strings.TrimSpace(key))
		}
	}
	return s, nil
}

// client is the admin API's client, with the URL and credentials from the
// flags, the environment or the config file, in that order.
func (c *cli) client() (adminv1connect.AuthzAdminServiceClient, error) {
	hc, url, err := c.connection()
	if err != nil {
		return nil, err
	}
	return adminv1connect.NewAuthzAdminServiceClient(hc, url), nil
}

// communityClient is the community API's client, reached and signed in as
// the admin API's.
func (c *cli) communityClient() (communityv1connect.CommunityServiceClient, error) {
	hc, url, err := c.connection()
	if err != nil {
		return nil, err
	}
	return communityv1connect.NewCommunityServiceClient(hc, url), nil
}

// connection is the HTTP client carrying the credentials, and Beep's URL.
func (c *cli) connection() (*http.Client, string, error) {
	url, token := c.url, c.token
	if url == "" {
		url = c.env.Getenv("BEEP_URL")
	}
	if token == "" {
		token = c.env.Getenv("BEEP_TOKEN")
	}
	if path, explicit := c.configPath(); path != "" && (url == "" || token == "") {
		s, err := readSettings(path)
		if err != nil && (explicit || !errors.Is(err, os.ErrNotExist)) {
			return nil, "", usage("config file: %v", err)
		}
		if url == "" {
			url = s.URL
		}
		if token == "" {
			token = s.Token
		}
	}
	if url == "" {
		url = DefaultURL
	}
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return nil, "", usage("--url %q: want http:// or https://", url)
	}
	base := c.env.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	zed := c.zed
	if zed == "" {
		zed = c.env.Getenv("BEEP_ZED_TOKEN")
	}
	hc := &http.Client{Transport: bearer{token: token, zed: zed, next: transport}, Jar: base.Jar}
	return hc, strings.TrimSuffix(url, "/"), nil
}

// bearer adds the credentials (and the ZedToken) to every request.
type bearer struct {
	token, zed string
	next       http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.token != "" {
		r.Header.Set("Authorization", "Bearer "+b.token)
	}
	if b.zed != "" {
		r.Header.Set("Beep-Zed-Token", b.zed)
	}
	r.Header.Set("User-Agent", "beepctl")
	return b.next.RoundTrip(r)
}

// call bounds a request by --timeout.
func (c *cli) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// readInput reads a file argument ("-" is standard input).
func (c *cli) readInput(name string) ([]byte, error) {
	if name == "-" {
		return io.ReadAll(c.env.Stdin)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, usage("%v", err)
	}
	return data, nil
}
