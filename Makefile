# Beep. `make run` runs it; `make test` runs every test (what CI runs).
SHELL := /bin/bash
# Every package of every module of the workspace (go.work).
PACKAGES := github.com/beepchat/beep/...
BUF := GOWORK=off go tool -modfile=tools/buf/go.mod buf

.PHONY: run test generate check-generated bench bench-chat build help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

run: ## Run Beep: every component in one process, SpiceDB in-process on the local PostgreSQL (flags in ARGS="...")
	@scripts/ensure-postgres
	go run ./cmd/beep serve -kratos-bin "$$(scripts/build-kratos)" $(ARGS)

test: ## Run the whole test suite: generated code, policies, unit and integration tests
	@scripts/ensure-postgres
	scripts/check-generated
	go vet $(PACKAGES)
	BEEP_KRATOS_BIN="$$(scripts/build-kratos)" go test -count=1 -timeout 20m $(PACKAGES)

generate: ## Regenerate everything derived from schema/ (beep.zed, authz constants, gen/)
	go run ./schema/zedgen
	cd authz && go run ./internal/authzgen -schema ../schema/beep.zed -out schema_gen.go
	find gen \( -name '*.pb.go' -o -name '*.connect.go' \) -delete
	$(BUF) generate

check-generated: ## Fail if anything generated is stale or the protobuf API broke
	scripts/check-generated

bench: ## Run the authorization benchmarks (see docs/benchmarks.md)
	@scripts/ensure-postgres
	go test -run '^$$' -bench /postgres -benchtime 10s -timeout 60m ./authz/bench/
	BEEP_BENCH_SERVERS=1000 go test -run '^$$' -bench /memory -benchtime 10s -timeout 60m ./authz/bench/

# The chat load: 10,000 users in 1,000 servers, all subscribed (10 streams
# per HTTP/2 connection), four rates, SpiceDB on its default engine.
BENCH_CHAT_ENGINE ?= postgres
BENCH_CHAT ?= -users 10000 -servers 1000 -subscribers 10000 -stream-transport ws -rate 250,500,1000,2000 -duration 15s

bench-chat: ## Load chat and its stream through the gateway: beepload starts beep, reports, stops it (BENCH_CHAT="...", BENCH_CHAT_ENGINE=memory; see docs/benchmarks.md)
	@scripts/ensure-postgres
	go build -o bin/beep ./cmd/beep
	go build -o bin/beepload ./cmd/beepload
	bin/beepload -beep bin/beep -spicedb-engine $(BENCH_CHAT_ENGINE) $(BENCH_CHAT)

build: ## Build bin/beep, bin/beepctl and bin/beepload
	go build -o bin/beep ./cmd/beep
	go build -o bin/beepctl ./cmd/beepctl
	go build -o bin/beepload ./cmd/beepload
