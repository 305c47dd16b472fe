package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/filter"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
)

// Package names as they appear in a NixOS system closure and a CI
// cache: libraries, tools, language packages, project outputs.
var packages = []string{
	"glibc", "gcc", "gcc-wrapper", "binutils", "coreutils", "bash", "bash-interactive",
	"openssl", "zlib", "xz", "bzip2", "zstd", "libffi", "ncurses", "readline", "sqlite",
	"curl", "nghttp2", "libssh2", "brotli", "krb5", "keyutils", "libidn2", "libunistring",
	"python3", "python3.12-numpy", "python3.12-requests", "python3.12-urllib3", "python3.12-pip",
	"python3.11-setuptools", "perl", "perl5.38.2-Encode-Locale", "ruby", "nodejs", "go",
	"rustc", "cargo", "llvm", "clang", "cmake", "ninja", "meson", "pkg-config", "gnumake",
	"systemd", "dbus", "util-linux", "linux", "linux-headers", "nixos-system-builder",
	"home-manager-generation", "hello", "openc910-sim", "openc910-rtl", "verilator",
	"yosys", "iverilog", "gtkwave", "boost", "protobuf", "grpc", "abseil-cpp", "icu4c",
	"libxml2", "libxslt", "gettext", "texinfo", "man-db", "groff", "git", "openssh",
	"gnupg", "libgcrypt", "nettle", "gmp", "mpfr", "libmpc", "isl", "expat", "pcre2",
	"source", "stdenv-linux", "hook", "patchelf", "findutils", "diffutils", "gnused",
	"gnugrep", "gawk", "gnutar", "gzip", "which", "file", "acl", "attr", "libcap",
	"myorg-api-server", "myorg-frontend", "myorg-cli", "ci-runner-env", "docker-image-app",
}

var versions = []string{"", "-1.0", "-2.38", "-13.2.0", "-3.3.1", "-1.3.1", "-5.6.0", "-8.10.1",
	"-0.4.2", "-2024.01.15", "-unstable-2024-03-01", "-6.9.7", "-255.4", "-3.12.4", "-22.11.0"}

var outputs = []string{"", "", "", "", "-bin", "-dev", "-lib", "-doc", "-man", "-info", "-out", ".drv", ".tar.gz", "-debug"}

// realisticName is a store path name such as glibc-2.38-dev.
func realisticName(rng *rand.Rand) string {
	return packages[rng.IntN(len(packages))] + versions[rng.IntN(len(versions))] + outputs[rng.IntN(len(outputs))]
}

// benchRuleSet makes n allow rules in the proportions a large
// organisation's list would have them, and n/10+3 deny rules:
//
//	80% literal-prefix name globs   proj123-*, myorg-api-server-[0-9]*
//	 8% brace alternatives          {proj45,glibc}-*
//	 6% literal-suffix name globs   *-proj77-bin
//	 4% whole-path globs            /nix/store/*-proj9-*
//	 2% no literal end              *proj12*
func benchRuleSet(n int, rng *rand.Rand) (allow, deny []string) {
	for i := 0; i < n; i++ {
		pkg := packages[i%len(packages)]
		switch x := rng.IntN(100); {
		case x < 40:
			allow = append(allow, fmt.Sprintf("proj%d-*", i))
		case x < 80:
			allow = append(allow, fmt.Sprintf("%s-proj%d-[0-9]*", pkg, i))
		case x < 88:
			allow = append(allow, fmt.Sprintf("{proj%d,%s}-*", i, pkg))
		case x < 94:
			allow = append(allow, fmt.Sprintf("*-proj%d-bin", i))
		case x < 98:
			allow = append(allow, fmt.Sprintf("/nix/store/*-proj%d-*", i))
		default:
			allow = append(allow, fmt.Sprintf("*proj%d*", i))
		}
	}
	// Rules that do match the names, so that some are selected.
	allow = append(allow, "hello-*", "openc910-*", "myorg-*", "python3.12-*")
	deny = []string{"*-doc", "*-man", "*.drv"}
	for i := 0; i < n/10; i++ {
		deny = append(deny, fmt.Sprintf("secret%d-*", i))
	}
	return allow, deny
}

// runDecide measures filter decisions per second: the rules compiled once,
// then Decide over every name, repeated, the median pass reported.
func runDecide(args []string) error {
	fs := flag.NewFlagSet("decide", flag.ContinueOnError)
	nNames := fs.Int("names", 100000, "distinct store paths")
	ruleCounts := fs.String("rules", "10,100,1000", "allow-rule counts")
	repeat := fs.Int("repeat", 7, "passes over the names per rule count")
	results := fs.String("results", "", "append results here")
	profile := fs.String("cpuprofile", "", "write a CPU profile of the largest rule set's passes")
	noFull := fs.Bool("no-full-path", false, "also measure the rule sets without their whole-path globs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	names := make([]storepath.Path, *nNames)
	for i := range names {
		names[i] = fakePath(rng)
	}
	counts := strings.Split(*ruleCounts, ",")
	var rs []Result
	for ci, cs := range counts {
		n, err := strconv.Atoi(cs)
		if err != nil {
			return err
		}
		allow, deny := benchRuleSet(n, rand.New(rand.NewPCG(uint64(n), 3)))
		variants := []struct {
			name  string
			allow []string
		}{{fmt.Sprintf("decide rules=%d", n), allow}}
		if *noFull {
			var kept []string
			for _, a := range allow {
				if !strings.HasPrefix(a, "/") {
					kept = append(kept, a)
				}
			}
			variants = append(variants, struct {
				name  string
				allow []string
			}{fmt.Sprintf("decide rules=%d without whole-path globs", n), kept})
		}
		for vi, v := range variants {
			r, err := filter.Compile(v.allow, deny)
			if err != nil {
				return err
			}
			if *profile != "" && ci == len(counts)-1 && vi == 0 {
				f, err := os.Create(*profile)
				if err != nil {
					return err
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
			}
			var rates []float64
			selected := 0
			for pass := 0; pass < *repeat; pass++ {
				selected = 0
				start := time.Now()
				for _, p := range names {
					if r.Decide(p).Selected {
						selected++
					}
				}
				rates = append(rates, float64(len(names))/time.Since(start).Seconds())
			}
			if *profile != "" && ci == len(counts)-1 && vi == 0 {
				pprof.StopCPUProfile()
			}
			res := Result{Kind: "decide", Name: v.name, Rules: len(v.allow) + len(deny), Items: len(names), PerSecond: median(rates), Value: float64(selected)}
			fmt.Fprintf(os.Stderr, "  %-45s %d rules (allow+deny), %d names, %d selected: %.0f decisions/s\n", v.name, res.Rules, len(names), selected, res.PerSecond)
			rs = append(rs, res)
		}
	}
	return appendResults(*results, rs...)
}
