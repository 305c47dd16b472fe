# The commands README.md shows. `make test` is what .ci/run runs.
GO ?= go
export CGO_ENABLED ?= 0

.PHONY: build test demo bench fmt

build:
	$(GO) build -o build/cachix-filter-hook .

# Unit tests, CLI scripts, the end-to-end tests with real Nix, and a
# bounded run of the store-path fuzzer.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	$(GO) test -run=NONE -fuzz=FuzzParse -fuzztime=15s ./storepath

demo:
	bash scripts/demo.sh

bench:
	bash bench/run.sh
