// Command beepctl administers Beep's authorization graph through Beep's
// gateway: the schema, relationships, checks and their explanation,
// lookups, assertion files (also offline), the services' health, the
// agreement between the databases and SpiceDB, and relationship changes as
// they happen. See docs/admin.md, or `beepctl help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/beepchat/beep/internal/beepctl"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := beepctl.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
