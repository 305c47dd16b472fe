# The commands README.md shows. `make test` is what .ci/run runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: build install man test test-unit test-nix-matrix demo bench fmt

# The version the binary reports: git describe of this checkout (a tag, or
# the commit, -dirty with uncommitted changes); outside a checkout, empty,
# and the binary falls back to its build info, then to "dev".
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
OUT ?= build/cachix-filter-hook

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(OUT) .

# The binary, its man page and its shell completions, under PREFIX (or
# DESTDIR/PREFIX for a package). bash-completion, zsh and fish look in
# these directories of /usr/local/share and /usr/share.
# It installs what make build made (sudo make install needs no Go).
PREFIX ?= /usr/local
install:
	@test -x $(OUT) || { echo "make install: no $(OUT): run make build first" >&2; exit 1; }
	install -D -m 0755 $(OUT) $(DESTDIR)$(PREFIX)/bin/cachix-filter-hook
	install -D -m 0644 cachix-filter-hook.1 $(DESTDIR)$(PREFIX)/share/man/man1/cachix-filter-hook.1
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	$(OUT) completion bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/cachix-filter-hook
	$(OUT) completion zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_cachix-filter-hook
	$(OUT) completion fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/cachix-filter-hook.fish

# cachix-filter-hook.1 from the command table (a test fails when it is not
# current).
man:
	$(GO) run . __man > cachix-filter-hook.1

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
# -timeout 25m: the end-to-end package takes 4-8 minutes here and passed
# go test's default bound of 10 on a loaded machine (ci16a); a hang still
# ends, well within CI's 90 minutes.
test:
	$(GO) vet ./...
	@summary=$$(mktemp); \
	 echo "$(GO) test -count=1 -timeout 25m ./..."; CFH_TEST_SUMMARY=$$summary $(GO) test -count=1 -timeout 25m ./...; st=$$?; \
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
