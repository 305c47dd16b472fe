# The commands README.md shows. `make test` is what .ci/run runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: build test test-unit test-nix-matrix demo bench fmt

build:
	$(GO) build -o build/cachix-filter-hook .

# The fuzz pass is bounded by executions, not time: with -fuzztime=15s,
# Go 1.26's coordinator can race its own deadline and fail with "context
# deadline exceeded" and no input (golang/go#75804, fixed in Go 1.27),
# most often with a new corpus on a busy machine. 600,000 executions take
# about 15 s on this project's 2-core machine (7 s quiet, 30 s under a
# full CI load). A failing input still fails the run, and Go keeps it in
# internal/storepath/testdata/fuzz/FuzzParse, where every later go test
# runs it.
FUZZ_EXECS ?= 600000x

# Unit tests, CLI scripts, the end-to-end tests with real Nix, and a
# bounded run of the store-path fuzzer: what CI runs.
# test/nixmodules writes how many module checks ran into
# CFH_TEST_SUMMARY, printed here: go test shows nothing of a passing package.
test:
	$(GO) vet ./...
	@summary=$$(mktemp); \
	 echo "$(GO) test -count=1 ./..."; CFH_TEST_SUMMARY=$$summary $(GO) test -count=1 ./...; st=$$?; \
	 cat $$summary; rm -f $$summary; exit $$st
	$(GO) test -run=NONE -fuzz=FuzzParse -fuzztime=$(FUZZ_EXECS) ./internal/storepath

# The quick loop while editing: every package's own tests, without Nix
# (-short skips whatever builds with it, and the end-to-end tests).
test-unit:
	$(GO) test -short ./...

# The end-to-end scenarios on newer Nix in multi-user mode, in Debian
# chroots kept under /var/cache/cachix-filter-hook (built the first time,
# both at once: 145 s here). As root. See docs/nix-checks.md.
NIX_MATRIX ?= trixie sid
test-nix-matrix:
	@pids=; for s in $(NIX_MATRIX); do bash scripts/nix-chroot.sh build $$s & pids="$$pids $$!"; done; \
	 for p in $$pids; do wait $$p || exit 1; done
	@set -e; for s in $(NIX_MATRIX); do \
	  echo "==> Nix matrix: $$s ($$(cat $$(bash scripts/nix-chroot.sh path $$s)/.cfh-chroot-ready))"; \
	  CFH_NIX_CHROOT=$$(bash scripts/nix-chroot.sh path $$s) bash scripts/nix-chroot.sh run $$s \
	    $(GO) test -count=1 -timeout 15m -v ./test/matrix; \
	done

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh
