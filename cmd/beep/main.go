// Command beep runs Beep.
//
//	beep [serve] [flags]        run every component in one process (the default)
//	beep serve all [flags]      the same
//	beep serve ROLE [flags]     run one component: community, user, chat, notification or gateway (the distributed mode)
//	beep devtoken -user ID      print a development token (see -dev-token-key)
//	beep reconcile [-check]     compare SpiceDB with the databases, or converge it
//	beep version                print the version
//
// Configuration comes from flags or the BEEP_* environment variables that
// `beep serve -h` lists. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/beepchat/beep/internal/telemetry"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "beep:", err)
		if errors.Is(err, errDrift) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// run is main without the process: ready, when not nil, receives the
// running instance once it serves (tests use it).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- *Instance) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, err := parseConfig(args, stderr)
		if err != nil {
			return err
		}
		logger := slog.New(telemetry.LogHandler(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))
		return serve(ctx, cfg, logger, ready)
	case "devtoken":
		return devtoken(args, stdout, stderr)
	case "reconcile":
		return reconcile(ctx, args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "beep", version)
		return nil
	default:
		return fmt.Errorf("unknown command %q (want serve, devtoken, reconcile or version)", cmd)
	}
}
