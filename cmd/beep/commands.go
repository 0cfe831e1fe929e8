package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/beepchat/beep/services/gateway"
)

// devtoken prints a development token (beep devtoken -user ann).
func devtoken(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("beep devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.String("user", "", "the user id the token acts as")
	ttl := fs.Duration("ttl", 12*time.Hour, "how long the token is valid")
	key := fs.String("key", os.Getenv("BEEP_DEV_TOKEN_KEY"), "the key `beep serve -dev-token-key` was given ($BEEP_DEV_TOKEN_KEY)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	token, err := gateway.IssueDevToken([]byte(*key), *user, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// reconcile compares SpiceDB with the community database (-check) or
// converges it: beep reconcile [-check] [serve flags].
func reconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var check bool
	cfg, err := parseConfigAs("beep reconcile", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&check, "check", false, "report drift without changing anything (exit status 3 when there is drift)")
	})
	if err != nil {
		return err
	}
	cfg.SpiceDBGRPCAddr = "" // a second in-process SpiceDB on the same datastore serves nobody
	cfg.noMetrics = true
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := open(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.close()
	svc := c.community
	drift, err := svc.CheckDrift(ctx)
	if err != nil {
		return err
	}
	for _, d := range drift {
		fmt.Fprintf(stdout, "server %s: %d missing, %d extra\n", d.ServerID, len(d.Missing), len(d.Extra))
		for _, r := range d.Missing {
			fmt.Fprintf(stdout, "  + %s\n", r)
		}
		for _, r := range d.Extra {
			fmt.Fprintf(stdout, "  - %s\n", r)
		}
	}
	if len(drift) == 0 {
		fmt.Fprintln(stdout, "no drift: SpiceDB agrees with the database")
		return nil
	}
	if check {
		return errDrift
	}
	for _, d := range drift {
		id, err := uuid.Parse(d.ServerID)
		if err != nil {
			return err
		}
		if _, err := svc.Reconcile(ctx, id); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "reconciled %d servers\n", len(drift))
	return nil
}

// errDrift makes `beep reconcile -check` exit with status 3.
var errDrift = errors.New("SpiceDB differs from the database")
