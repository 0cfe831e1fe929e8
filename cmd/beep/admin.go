package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/beepchat/beep/authz"
	"github.com/beepchat/beep/authz/inprocess"
	"github.com/beepchat/beep/gen/beep/admin/v1/adminv1connect"
	"github.com/beepchat/beep/services/admin"
)

// The authorization admin service (beepctl, the playground) is hosted by
// the process that owns the community database, whose drift it reconciles:
// in one process beside the others behind the gateway, in the distributed
// mode on the community service's port, where the gateway forwards it.
const (
	roleAdmin = "admin" // its in-memory host name in one process
	adminPath = "/" + adminv1connect.AuthzAdminServiceName + "/"
)

// versionHeader carries the version of the process on its /healthz and
// /readyz answers, for ServicesStatus.
const versionHeader = "Beep-Version"

// versioned adds the process's version to h's answers.
func versioned(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(versionHeader, version)
		h.ServeHTTP(w, r)
	})
}

// bootstrapAdmins writes the -platform-admins as platform:beep#admin: the
// first administrators exist because the operator named them. Touching is
// idempotent; removing a name from the flag revokes nothing (delete the
// relationship with beepctl).
func bootstrapAdmins(ctx context.Context, c *authz.Client, ids []string, log *slog.Logger) error {
	if len(ids) == 0 {
		return nil
	}
	updates := make([]authz.Update, 0, len(ids))
	for _, id := range ids {
		updates = append(updates, authz.Touch(authz.Relationship{Relation: authz.Platform.Admin, ResourceID: authz.PlatformID, Subject: authz.UserSubject(id)}))
	}
	at, err := c.Write(ctx, updates)
	if err != nil {
		return fmt.Errorf("writing the platform admins (-platform-admins): %w", err)
	}
	log.Info("platform admins written", "admins", strings.Join(ids, ","), "revision", at)
	return nil
}

// spicedbVersion is the version of SpiceDB this process runs in-process
// ("" for a remote one, which does not say).
func spicedbVersion(cfg Config) string {
	if cfg.SpiceDBEndpoint != "" {
		return ""
	}
	return inprocess.Version()
}

// statusProbe reports one service of the deployment.
type statusProbe func(ctx context.Context) admin.Status

// deploymentStatus asks every probe at once, within a few seconds.
func deploymentStatus(probes func() []statusProbe) func(ctx context.Context) []admin.Status {
	return func(ctx context.Context) []admin.Status {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		list := probes()
		out := make([]admin.Status, len(list))
		var wg sync.WaitGroup
		for i, p := range list {
			wg.Go(func() { out[i] = p(ctx) })
		}
		wg.Wait()
		return out
	}
}

// spicedbProbe reports SpiceDB.
func spicedbProbe(c *authz.Client, cfg Config) statusProbe {
	return func(ctx context.Context) admin.Status {
		st := admin.SpiceDBStatus(ctx, c, spicedbVersion(cfg))
		where := "in-process, " + cfg.SpiceDBEngine + " engine"
		if cfg.SpiceDBEndpoint != "" {
			where = cfg.SpiceDBEndpoint
		}
		if st.Detail != "" {
			where += "; " + st.Detail
		}
		st.Detail = where
		return st
	}
}

// upstreamProbe reports a Beep service by its /readyz, as the gateway reaches it.
func upstreamProbe(name string, u upstream) statusProbe {
	return func(ctx context.Context) admin.Status {
		st := admin.Status{Name: name, Detail: u.base.String()}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.base.JoinPath("readyz").String(), nil)
		if err != nil {
			st.Detail = err.Error()
			return st
		}
		resp, err := u.client.Do(req)
		if err != nil {
			st.Health, st.Detail = admin.NotServing, err.Error()
			return st
		}
		defer resp.Body.Close()
		st.Version = resp.Header.Get(versionHeader)
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			st.Health, st.Detail = admin.NotServing, strings.TrimSpace(string(body))
			return st
		}
		st.Health = admin.Serving
		return st
	}
}

// selfProbe reports a component of this very process, which answers.
func selfProbe(name, detail string) statusProbe {
	return func(context.Context) admin.Status {
		return admin.Status{Name: name, Health: admin.Serving, Version: version, Detail: detail}
	}
}

// kratosProbe reports Kratos by its readiness (and its version, when the
// admin API is known).
func kratosProbe(id *identity) statusProbe {
	return func(ctx context.Context) admin.Status {
		st := admin.Status{Name: "kratos", Detail: id.publicURL}
		if id.publicURL == "" {
			st.Detail = "no identity server: sign-in is off"
			return st
		}
		get := func(url string) (*http.Response, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return nil, err
			}
			return http.DefaultClient.Do(req)
		}
		resp, err := get(strings.TrimSuffix(id.publicURL, "/") + "/health/ready")
		if err != nil {
			st.Health, st.Detail = admin.NotServing, err.Error()
			return st
		}
		resp.Body.Close()
		st.Health = admin.Serving
		if resp.StatusCode != http.StatusOK {
			st.Health, st.Detail = admin.NotServing, "/health/ready: "+resp.Status
		}
		if id.adminURL != "" {
			if resp, err := get(strings.TrimSuffix(id.adminURL, "/") + "/version"); err == nil {
				var v struct {
					Version string `json:"version"`
				}
				_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&v)
				resp.Body.Close()
				st.Version = v.Version
			}
		}
		return st
	}
}
