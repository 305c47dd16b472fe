# A derivation with n outputs, never built (see BENCHMARKS.md, Scale):
#   nix-instantiate bench/bigdrv.nix --arg n 100000 --argstr tag v1
{ n ? 100000, tag ? "v1" }:
derivation {
  name = "benchbig-${toString n}-${tag}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "exit 1" ];
  outputs = builtins.genList (i: "o${toString i}") n;
}
