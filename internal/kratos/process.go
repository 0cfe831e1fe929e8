// Package kratos runs Ory Kratos, Beep's identity server, as a supervised
// child process of `beep serve`, and asks it who a session belongs to. Beep
// never sees or stores passwords: Kratos does.
package kratos

import (
	"bufio"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed kratos.yml identity.schema.json oidc.jsonnet courier.jsonnet VERSION
var files embed.FS

// Version is the Kratos version Beep is built and tested with.
func Version() string {
	v, _ := files.ReadFile("VERSION")
	return strings.TrimSpace(string(v))
}

// Config is how to run Kratos.
type Config struct {
	// Binary is the kratos executable (scripts/build-kratos makes it).
	Binary string
	// DSN is Kratos' database: "memory", "sqlite://file?_fk=true" or a
	// postgres:// URL.
	DSN string
	// PublicAddr and AdminAddr are where Kratos listens (host:port).
	PublicAddr, AdminAddr string
	// PublicBaseURL is the URL browsers and apps reach Kratos' public API
	// at: the gateway's, which forwards /self-service/ and /sessions/.
	PublicBaseURL string
	// Providers are the OIDC providers people may sign in with.
	Providers []Provider
	// CourierURL, when set, is where Kratos posts the messages it would
	// email (a Courier, in development).
	CourierURL string
	// SMTPURL, when set (and CourierURL is not), is the SMTP server Kratos
	// sends its emails through.
	SMTPURL string
	// Log receives Kratos' output, line by line.
	Log *slog.Logger
}

// Provider is an OIDC provider Kratos signs people in with: Google, or the
// Polytech bridge. Its claims become traits through oidc.jsonnet.
type Provider struct {
	// ID names it in Kratos' flows and callback URL ("google", "polytech").
	ID                     string
	IssuerURL              string
	ClientID, ClientSecret string
}

// providersEnv is Kratos' OIDC configuration for providers.
func providersEnv(providers []Provider, mapper string) ([]string, error) {
	if len(providers) == 0 {
		return nil, nil
	}
	var list []map[string]any
	for _, p := range providers {
		list = append(list, map[string]any{
			"id": p.ID, "provider": "generic", "issuer_url": p.IssuerURL, "client_id": p.ClientID, "client_secret": p.ClientSecret,
			"mapper_url": "file://" + mapper, "scope": []string{"openid", "email", "profile"},
		})
	}
	b, err := json.Marshal(list)
	if err != nil {
		return nil, err
	}
	return []string{"SELFSERVICE_METHODS_OIDC_ENABLED=true", "SELFSERVICE_METHODS_OIDC_CONFIG_PROVIDERS=" + string(b)}, nil
}

// Process is a running, supervised Kratos.
type Process struct {
	// PublicURL and AdminURL reach Kratos directly.
	PublicURL, AdminURL string
	done                chan struct{}
}

// Start writes Kratos' configuration to a temporary folder, migrates its
// database, starts it, restarts it if it dies, and returns once it is
// ready. Kratos stops when ctx ends; Wait waits for that.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	// Kratos runs in its own folder: find the binary first.
	bin, err := exec.LookPath(cfg.Binary)
	if err == nil {
		bin, err = filepath.Abs(bin)
	}
	if err != nil {
		return nil, fmt.Errorf("kratos: %w", err)
	}
	cfg.Binary = bin
	dir, err := os.MkdirTemp("", "beep-kratos-")
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"kratos.yml", "identity.schema.json", "oidc.jsonnet", "courier.jsonnet"} {
		b, _ := files.ReadFile(name)
		// The identity schema, where it now is.
		b = []byte(strings.ReplaceAll(string(b), "file://identity.schema.json", "file://"+filepath.Join(dir, "identity.schema.json")))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	env := append(os.Environ(),
		"DSN="+cfg.DSN,
		"SERVE_PUBLIC_HOST="+host(cfg.PublicAddr), "SERVE_PUBLIC_PORT="+port(cfg.PublicAddr),
		"SERVE_ADMIN_HOST="+host(cfg.AdminAddr), "SERVE_ADMIN_PORT="+port(cfg.AdminAddr),
		"SERVE_PUBLIC_BASE_URL="+cfg.PublicBaseURL,
		"SERVE_ADMIN_BASE_URL=http://"+cfg.AdminAddr+"/",
		"SELFSERVICE_DEFAULT_BROWSER_RETURN_URL="+cfg.PublicBaseURL,
		"SELFSERVICE_FLOWS_LOGOUT_AFTER_DEFAULT_BROWSER_RETURN_URL="+cfg.PublicBaseURL,
	)
	env = append(env, uiEnv(cfg.PublicBaseURL)...)
	// Browsers return to Beep; native apps to beep://oauth/callback.
	returns, _ := json.Marshal([]string{strings.TrimRight(cfg.PublicBaseURL, "/"), "beep://oauth/callback"})
	env = append(env, "SELFSERVICE_ALLOWED_RETURN_URLS="+string(returns))
	providers, err := providersEnv(cfg.Providers, filepath.Join(dir, "oidc.jsonnet"))
	if err != nil {
		return nil, err
	}
	env = append(env, providers...)
	switch {
	case cfg.CourierURL != "":
		env = append(env, courierEnv(cfg.CourierURL, filepath.Join(dir, "courier.jsonnet"))...)
	case cfg.SMTPURL != "":
		env = append(env, "COURIER_SMTP_CONNECTION_URI="+cfg.SMTPURL)
	}
	if cfg.DSN != "memory" {
		migrate := exec.CommandContext(ctx, cfg.Binary, "migrate", "sql", "-e", "--yes", "-c", filepath.Join(dir, "kratos.yml"))
		migrate.Env, migrate.Dir = env, dir
		if out, err := migrate.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("kratos: migrating its database: %w\n%s", err, out)
		}
	}
	p := &Process{PublicURL: "http://" + cfg.PublicAddr, AdminURL: "http://" + cfg.AdminAddr, done: make(chan struct{})}
	// The courier sends the messages queued by the flows (codes).
	args := []string{"serve", "-c", filepath.Join(dir, "kratos.yml"), "--watch-courier"}
	if strings.HasPrefix(cfg.PublicBaseURL, "http://") {
		args = append(args, "--dev") // cookies without TLS: local development only
	}
	go func() {
		defer close(p.done)
		defer os.RemoveAll(dir)
		supervise(ctx, cfg, args, env, dir)
	}()
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	cfg.Log.Info("Kratos started", "version", Version(), "public", p.PublicURL, "admin", p.AdminURL)
	return p, nil
}

// Wait returns once Kratos has stopped.
func (p *Process) Wait() { <-p.done }

// supervise runs Kratos until ctx ends, restarting it (with a growing
// pause) when it exits.
func supervise(ctx context.Context, cfg Config, args, env []string, dir string) {
	pause := time.Second
	for {
		cmd := exec.CommandContext(ctx, cfg.Binary, args...)
		cmd.Env, cmd.Dir = env, dir
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 10 * time.Second
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = cmd.Stdout
		began := time.Now()
		err := cmd.Start()
		if err == nil {
			relay(out, cfg.Log)
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > time.Minute {
			pause = time.Second
		}
		cfg.Log.Error("Kratos exited; restarting", "err", err, "in", pause)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// relay logs Kratos' output lines (its warnings and errors: see
// kratos.yml) until it closes.
func relay(r io.Reader, log *slog.Logger) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		log.Warn("kratos", "line", s.Text())
	}
}

func (p *Process) waitReady(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.AdminURL+"/health/ready", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.done:
			return errors.New("kratos: exited before it was ready")
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kratos: not ready after %s", within)
}

func host(addr string) string { h, _, _ := strings.Cut(addr, ":"); return h }
func port(addr string) string { _, p, _ := strings.Cut(addr, ":"); return p }
