# fwpush — see README.md. `make demo` runs the main job, `make test` every test.
SHELL   := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/fwpush
GO      ?= go

.PHONY: build deps test lint demo bench fuzz graph clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fwpush

deps:
	./scripts/deps.sh

# Everything CI runs: formatting, vet, and every test with the race
# detector. End-to-end tests need root (network namespaces, sshd, iptables).
test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -timeout 40m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 ./...

demo: deps build
	./scripts/demo.sh

# Side by side with Ansible (linear, Mitogen) and OpenSSH on labs of 6, 50 and
# 150 hosts, 3 runs each; rewrites BENCHMARKS.md's results and docs/bench.svg.
# Root; installs ansible-core, ansible-mitogen and gnuplot-nox if missing.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	$(GO) build -o bin/fwbench-launch ./bench/cmd/fwbench-launch
	$(GO) run ./bench/cmd/fwbench -fwpush $(BIN) -launcher bin/fwbench-launch -out BENCHMARKS.md -plot docs/bench.svg

fuzz:
	$(GO) test ./inventory -run '^$$' -fuzz FuzzParse -fuzztime 60s

# The picture of examples/site.toml's flows in the README.
graph: build
	./scripts/deps.sh dot
	mkdir -p docs
	set -o pipefail; $(BIN) graph examples/site.toml | dot -Tsvg -o docs/site.svg

clean:
	rm -rf bin
