package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
)

// Sample is the Beep process's memory at one moment.
type Sample struct {
	// RSSKiB is the resident set (VmRSS of /proc/<pid>/status); 0 unknown.
	RSSKiB int64 `json:"rss_kib"`
	// HeapInuseBytes and Goroutines come from Beep's /metrics (Go's own).
	HeapInuseBytes int64 `json:"heap_inuse_bytes"`
	Goroutines     int64 `json:"goroutines"`
	// SpiceDB counts the in-process SpiceDB's API calls by method, and its
	// datastore queries ("datastore"), so far.
	SpiceDB map[string]int64 `json:"-"`
}

// sample reads pid's resident set and Beep's Go metrics.
func sample(ctx context.Context, base string, pid int) Sample {
	s := Sample{SpiceDB: map[string]int64{}}
	if pid > 0 {
		s.RSSKiB = vmRSS(pid)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return s
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		metric, labels, _ := strings.Cut(name, "{")
		switch metric {
		case "grpc_server_handled_total":
			if _, rest, ok := strings.Cut(labels, `grpc_method="`); ok {
				method, _, _ := strings.Cut(rest, `"`)
				s.SpiceDB[method] += int64(v)
			}
		case "spicedb_datastore_query_latency_count":
			s.SpiceDB["datastore"] += int64(v)
		case "go_memstats_heap_inuse_bytes":
			s.HeapInuseBytes = int64(v)
		case "go_goroutines":
			s.Goroutines = int64(v)
		}
	}
	return s
}

// vmRSS is pid's resident set in KiB (0 if it cannot be read).
func vmRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
