# The commands README.md shows. `make test` is what .ci/run runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: build test test-nix-matrix demo bench fmt

build:
	$(GO) build -o build/cachix-filter-hook .

# Unit tests, CLI scripts, the end-to-end tests with real Nix, and a
# bounded run of the store-path fuzzer.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -run=NONE -fuzz=FuzzParse -fuzztime=15s ./internal/storepath

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
