# A derivation with n outputs, never built: its .drv lists n store paths
# (benchbig-N-TAG-oI) that do not exist. The hook reads a build's outputs
# from $DRV_PATH when OUT_PATHS is empty, as Nix 2.8 runs it, so this is
# how one hook run gets 100,000 paths: OUT_PATHS cannot carry them (Linux
# limits one environment string to 128 KiB, about 2,000 store paths).
#   nix-instantiate bench/bigdrv.nix --arg n 100000 --argstr tag v1
{ n ? 100000, tag ? "v1" }:
derivation {
  name = "benchbig-${toString n}-${tag}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "exit 1" ];
  outputs = builtins.genList (i: "o${toString i}") n;
}
