# fwpush — see README.md. `make demo` runs the main job, `make test` every test.
SHELL   := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BIN     := bin/fwpush
GO      ?= go
PREFIX  ?= /usr/local

.PHONY: build install deps test test-short lint demo bench fuzz graph man release clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fwpush

# fwpush on PATH, as the lab's hints and the docs' examples run it:
# PREFIX/bin/fwpush (/usr/local/bin by default; DESTDIR for packagers).
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/fwpush

deps:
	./scripts/deps.sh

# Everything CI runs: formatting, vet, and every test with the race
# detector. End-to-end tests need root (network namespaces, sshd, iptables);
# they run at once, each in a lab of its own (see lab/labtest). A binary
# built with -race sleeps a second as it exits, for goroutines still
# running to report races (GORACE's atexit_sleep_ms): every package's test
# binary, after its tests have ended theirs, held one of go test's two
# slots for it, ~30 s in all, so it is off (unless GORACE sets it).
# go vet compiles the packages it checks against: with -race, as the tests
# compile them, and go test's own vet (a subset of go vet's checks, on the
# same code) is off. With an empty build cache, vet and the tests' builds
# then cost 280 s of CPU instead of 325 s (2 cores; warm, ~10 s less).
test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet -race ./...
	case "$$GORACE" in *atexit_sleep_ms*) ;; *) GORACE="$${GORACE:+$$GORACE }atexit_sleep_ms=0"; export GORACE ;; esac; \
	$(GO) test -race -vet=off -timeout 40m ./...

# The quick tests, in seconds, without root: go test -short leaves out the
# tests that need root or a lab, or time, and each package says how many
# (go test prints a passing package's output only with -v: the rest of it
# is dropped here, unless the package fails).
test-short:
	@set -o pipefail; $(GO) test -short -v ./... 2>&1 | awk '\
		/^(ok|\?) / { for (i = 1; i <= n; i++) if (out[i] ~ /^[^ \t].* skipped under -short /) print out[i]; print; n = 0; next } \
		/^FAIL[ \t]/ { for (i = 1; i <= n; i++) print out[i]; print; n = 0; next } \
		{ out[++n] = $$0 } \
		END { for (i = 1; i <= n; i++) print out[i] }'

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.6.1 ./...

demo: deps build
	./scripts/demo.sh

# Side by side with Ansible (linear, Mitogen) and OpenSSH on labs of 6, 50 and
# 150 hosts, 3 runs each, then 6 and 50 at a 60 ms round trip to the tunnel
# (bench/relay), 2 runs each; rewrites BENCHMARKS.md's results and docs/bench.svg.
# Its scale part (no lab) compiles and validates 50 to 10,000 hosts: alone,
# go run ./bench/cmd/fwbench -sizes '' -servers '' -fwpush bin/fwpush -launcher bin/fwbench-launch.
# Its servers part measures each tool's CPU time and processes forked on the
# lab's servers, per host, at 6 hosts (cgroups; strace in a run of its own):
# alone, the same with -sizes '' -scale '' -servers 6 (or 6,50).
# Root; installs ansible-core, ansible-mitogen, gnuplot-nox and strace if missing.
# Every sample goes to bin/bench.json after each lab: if the run is stopped,
# fwbench -from-json bin/bench.json writes the reports of what it measured.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...
	$(GO) build -o bin/fwbench-launch ./bench/cmd/fwbench-launch
	$(GO) run ./bench/cmd/fwbench -fwpush $(BIN) -launcher bin/fwbench-launch -out BENCHMARKS.md -plot docs/bench.svg -json bin/bench.json

# Each fuzz target for FUZZTIME; make test runs their seed corpora (and the
# inputs that once failed, kept in testdata/fuzz) as ordinary tests.
FUZZTIME ?= 30s
FUZZ := inventory:FuzzParse templates:FuzzRender roles:FuzzCompile \
	policy:FuzzCanonical policy:FuzzSplit policy:FuzzEvaluate policy:FuzzSets
fuzz:
	@set -e; for t in $(FUZZ); do \
		echo "fuzz: $${t##*:} in ./$${t%%:*} for $(FUZZTIME)"; \
		$(GO) test ./$${t%%:*} -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME); \
	done

# The picture of examples/site.toml's flows in docs/check.md.
graph: build
	./scripts/deps.sh dot
	mkdir -p docs
	set -o pipefail; $(BIN) graph examples/site.toml | dot -Tsvg -o docs/site.svg

# Man pages, one per command, from the commands' own help. Dated by the
# last commit, so that the same source gives the same pages.
man: build
	rm -rf docs/man
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null) $(BIN) gen-man docs/man

# Static binaries for Linux with the version injected, and their SHA-256
# sums: dist/fwpush-VERSION-linux-ARCH and dist/SHA256SUMS.
RELEASE_ARCHS := amd64 arm64
release:
	rm -rf dist
	mkdir -p dist
	set -e; for arch in $(RELEASE_ARCHS); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath \
			-ldflags "-s -w $(LDFLAGS)" -o dist/fwpush-$(VERSION)-linux-$$arch ./cmd/fwpush; \
	done
	cd dist && sha256sum fwpush-* > SHA256SUMS
	cat dist/SHA256SUMS

clean:
	rm -rf bin dist docs/man
