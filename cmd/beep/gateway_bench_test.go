package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/beepchat/beep/internal/pgtest"
	"github.com/beepchat/beep/services/gateway"
)

// Gateway benchmarks: requests through the public port of an all-in-one
// beep (SpiceDB in-process on PostgreSQL), JSON over HTTP/1.1 on loopback,
// 16 requests in flight. See docs/benchmarks.md.

type benchBeep struct {
	base, token, server, channel, zed string
	client                            *http.Client
}

func startBench(b *testing.B) *benchBeep {
	b.Helper()
	args := []string{"-postgres-url", pgtest.AdminURL(),
		"-spicedb-database", pgtest.NewDatabaseName(b, "beep_bench_spicedb"),
		"-community-database", pgtest.NewDatabaseName(b, "beep_bench_community"),
		"-user-database", pgtest.NewDatabaseName(b, "beep_bench_user"),
		"-chat-database", pgtest.NewDatabaseName(b, "beep_bench_chat"),
		"-http-addr", "127.0.0.1:0", "-spicedb-grpc-addr", "", "-dev-token-key", devKey, "-log-level", "error", "-rate-limit", "1000000", "-rate-burst", "1000000"}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Instance, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), io.Discard, io.Discard, ready) }()
	b.Cleanup(func() { cancel(); <-done })
	var inst *Instance
	select {
	case inst = <-ready:
	case err := <-done:
		b.Fatal(err)
	}
	tok, err := gateway.IssueDevToken([]byte(devKey), "ann", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	bb := &benchBeep{base: "http://" + inst.HTTPAddr, token: tok, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	var created struct {
		Server         struct{ ID string } `json:"server"`
		GeneralChannel struct{ ID string } `json:"generalChannel"`
		ZedToken       string              `json:"zedToken"`
	}
	if err := bb.call("CreateServer", map[string]any{"name": "Bench"}, &created); err != nil {
		b.Fatal(err)
	}
	bb.server, bb.channel, bb.zed = created.Server.ID, created.GeneralChannel.ID, created.ZedToken
	return bb
}

func (bb *benchBeep) call(method string, body any, out any) error {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, bb.base+"/beep.community.v1.CommunityService/"+method, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bb.token)
	if bb.zed != "" {
		req.Header.Set("Beep-Zed-Token", bb.zed)
	}
	resp, err := bb.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d %s", method, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func measureGateway(b *testing.B, op func() error) {
	var (
		mu        sync.Mutex
		latencies []time.Duration
	)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var local []time.Duration
		for pb.Next() {
			began := time.Now()
			if err := op(); err != nil {
				b.Error(err)
				return
			}
			local = append(local, time.Since(began))
		}
		mu.Lock()
		latencies = append(latencies, local...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(latencies) == 0 {
		return
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 { return float64(latencies[int(float64(len(latencies)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(len(latencies))/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkGatewayEffectivePermissions: a permission-checked read (the
// requirement check, then a CheckBulk of every channel permission).
func BenchmarkGatewayEffectivePermissions(b *testing.B) {
	bb := startBench(b)
	measureGateway(b, func() error {
		return bb.call("GetEffectivePermissions", map[string]any{"channelId": bb.channel}, nil)
	})
}

// BenchmarkGatewayCreateChannel: a write (requirement check, database
// transaction, SpiceDB write with the two-phase protocol).
func BenchmarkGatewayCreateChannel(b *testing.B) {
	bb := startBench(b)
	measureGateway(b, func() error {
		return bb.call("CreateChannel", map[string]any{"serverId": bb.server, "name": "bench", "kind": "CHANNEL_KIND_TEXT"}, nil)
	})
}
