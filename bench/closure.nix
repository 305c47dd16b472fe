# A root whose runtime closure holds n store paths, made at evaluation time
# with builtins.toFile, so nothing is built: the root's text names the
# other n - 1 files, which makes them its references. The same n and tag
# give the same paths, so the store keeps them from one run to the next.
#   nix-instantiate --eval --read-write-mode bench/closure.nix --arg n 10000 --argstr tag v1
{ n ? 10000, tag ? "v1" }:
let
  files = builtins.genList (i: builtins.toFile "benchclos-${toString i}-${tag}" "${tag} ${toString i}\n") (n - 1);
in
builtins.toFile "benchclos-root-${toString n}-${tag}" (builtins.concatStringsSep "\n" files)
