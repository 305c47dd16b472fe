# Functions for users of cachix-filter-hook that need nothing but Nix's
# builtins: no nixpkgs, no system to build for beyond the packages' own.
#
#   (import ./nix/lib.nix { }).cachixPackages { packages = [ pkgs.openc910 myApp ]; }
#
# The flake exposes the same as lib.cachixPackages.
{ }:
let
  inherit (builtins)
    all
    any
    attrNames
    concatMap
    concatStringsSep
    filter
    getContext
    hasContext
    head
    isAttrs
    isList
    isString
    length
    map
    match
    substring
    stringLength
    toString
    typeOf
    ;

  # The format the hook reads (internal/pkglist): its first line, one
  # `target NAME` line per target named, then one store path a line. Kept
  # in step with pkglist.Magic.
  magic = "cachix-filter-hook package list 1";

  # The hook's bounds of one list (pkglist.MaxSize, MaxPaths and
  # maxTargets): a list past one is refused at build time, nothing of it
  # queued, so it is refused here, at evaluation.
  maxSize = 1048576;
  maxPaths = 10000;
  maxTargets = 256;

  # What a store path as text looks like: the store directory, a hash and
  # a name, nothing after it.
  storePathRegex = "${builtins.storeDir}/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+";
  # No store path is longer (a name has at most 211 characters). Checked
  # before the regex: Nix's regex engine overflows its stack on a string
  # of some 250,000 characters, an error that names no bound.
  maxPathLength = stringLength builtins.storeDir + 34 + 211;

  # What the hook refuses in a target's name, as hook.conf does
  # (escape.OneLine): a control character (C0, but NUL, which no Nix
  # string holds; DEL; C1), the line and paragraph separators and the
  # bidirectional controls, made with fromJSON, as Nix's strings cannot
  # write them.
  hex = n: substring (n / 16) 1 "0123456789abcdef" + substring (n - n / 16 * 16) 1 "0123456789abcdef";
  notInNames = map (c: builtins.fromJSON ''"\u${c}"'') (
    builtins.genList (i: "00${hex (i + 1)}") 31
    ++ [ "007f" ]
    ++ builtins.genList (i: "00${hex (i + 128)}") 32
    ++ [
      "2028"
      "2029"
      "061c"
      "200e"
      "200f"
      "202a"
      "202b"
      "202c"
      "202d"
      "202e"
      "2066"
      "2067"
      "2068"
      "2069"
    ]
  );
  oneLine = t: builtins.replaceStrings notInNames (map (_: "") notInNames) t == t;

  # Whether s is UTF-8, as the hook asks of a target's name (pkglist).
  # Nix has no such test (its strings are bytes, and fromJSON, which
  # checks, fails in a way tryEval cannot catch), so s is read a byte at
  # a time (substring counts bytes). utf8Bytes are the bytes UTF-8 uses
  # past ASCII, each cut from a character fromJSON writes: a byte not in
  # it (0xc0, 0xc1, 0xf5-0xff) is in no UTF-8. A lead byte says how many
  # continuation bytes follow and the range of the first (no overlong
  # form, no surrogate, nothing past U+10FFFF), as Go's utf8 does.
  char = u: builtins.fromJSON ''"${u}"'';
  hex4 = n: hex (n / 256) + hex (n - n / 256 * 256);
  # The byte n (0x80-0xbf, 0xc2-0xf4): a continuation byte is the second
  # of U+0080-U+00BF; a lead byte, the first of the least character it
  # begins (a pair of surrogates for one past U+FFFF).
  byteOf =
    n:
    if n < 192 then
      substring 1 1 (char "\\u00${hex n}")
    else if n < 224 then
      substring 0 1 (char "\\u${hex4 ((n - 192) * 64)}")
    else if n < 240 then
      substring 0 1 (char "\\u${hex4 (if n == 224 then 2048 else (n - 224) * 4096)}")
    else
      substring 0 1 (char "\\u${hex4 (55296 + (if n == 240 then 0 else (n - 240) * 262144 - 65536) / 1024)}\\udc00");
  utf8Bytes = builtins.listToAttrs (
    map
      (n: {
        name = byteOf n;
        value =
          let
            range = lo: hi: {
              lo = byteOf lo;
              hi = byteOf hi;
            };
          in
          if n < 192 then
            { need = 0; }
          else if n < 224 then
            { need = 1; } // range 128 191
          else if n < 240 then
            { need = 2; } // (if n == 224 then range 160 191 else if n == 237 then range 128 159 else range 128 191)
          else
            { need = 3; } // (if n == 240 then range 144 191 else if n == 244 then range 128 143 else range 128 191);
      })
      (builtins.genList (i: i + 128) 64 ++ builtins.genList (i: i + 194) 51)
  );
  # The printable ASCII characters: a name of nothing else (oneLine has
  # refused the controls) is UTF-8 without the walk, which takes some
  # 25 µs and 1 KB a byte, more on a megabyte: a name of 256 KiB of "é"
  # took 6.4 s and 270 MB (Nix 2.8), one of 1 MiB 103 s and 456 MB. Its
  # only bound is the list's (maxSize): the hook has none smaller on a
  # target line. Measured with /usr/bin/time nix-instantiate --eval
  # --strict -E 'let l = import ./nix/lib.nix { }; in (l.cachixPackages
  # { packages = [ DRV ]; targets = [ NAME ]; }).drvPath', NAME made by
  # concatStringsSep "" (genList (_: "é") 131072).
  printable = builtins.genList (i: char "\\u00${hex (i + 32)}") 95;
  # Without its context: a byte of a name that names a store path is
  # looked up in utf8Bytes, and an attribute name may have none.
  utf8 =
    s:
    builtins.replaceStrings printable (map (_: "") printable) s == ""
    || utf8Walk (builtins.unsafeDiscardStringContext s);
  # The continuation bytes' range, and where ASCII ends: made once, not
  # at each byte (Nix remembers no call's value).
  contLo = byteOf 128;
  contHi = byteOf 191;
  utf8Walk =
    s:
    let
      step =
        st: b:
        if !st.ok then
          st
        else if st.need > 0 then
          {
            ok = st.lo <= b && b <= st.hi;
            need = st.need - 1;
            lo = contLo;
            hi = contHi;
          }
        else if b < contLo then
          st # ASCII
        else
          let
            k = utf8Bytes.${b} or { need = 0; };
          in
          {
            ok = k.need > 0;
            inherit (k) need;
            lo = k.lo or "";
            hi = k.hi or "";
          };
      end = builtins.foldl' step {
        ok = true;
        need = 0;
        lo = "";
        hi = "";
      } (builtins.genList (i: substring i 1 s) (stringLength s));
    in
    end.ok && end.need == 0;

  # A value quoted in a message, cut: it may be a megabyte.
  cut = s: if stringLength s > 200 then substring 0 200 s + "…" else s;

  # Whether the store path p (as text) is one its context names: a source
  # (builtins.toFile, a path) itself, or an output of a derivation, whose
  # name is the derivation's, with "-OUTPUT" but for out. (An output's
  # hash cannot be told here without reading the .drv.) "${pkg}-extra"
  # carries pkg's context but names a path that does not exist.
  inContext =
    p:
    let
      ctx = getContext p;
      nameOf = s: substring (stringLength builtins.storeDir + 34) (stringLength s) s;
      drvName = k: let n = nameOf k; in substring 0 (stringLength n - 4) n;
      outName = k: o: if o == "out" then drvName k else "${drvName k}-${o}";
    in
    any (
      k: (ctx.${k}.path or false) && k == p || any (o: outName k o == nameOf p) (ctx.${k}.outputs or [ ])
    ) (attrNames ctx);

  # A package stands for its default output (outPath); `pkg.all` is the
  # list of its outputs; `pkg.dev` is that output's own derivation
  # attribute set. A string is taken only when it carries the context of
  # the store path it is: text alone gives the list no dependency on the
  # path, so the hook's worker would find it outside the list's closure.
  pathsOf =
    where: p:
    if isList p then
      concatMap (pathsOf where) p
    else if isAttrs p && p ? outPath then
      pathsOf where (toString p.outPath)
    else if isString p then
      if !hasContext p then
        throw ''
          cachixPackages: ${where}: "${cut p}" is a string with no context: a store path written as text gives the list no dependency on it, and the worker would refuse to push it. List the package itself (pkgs.hello, or pkgs.hello.dev for another output).''
      else if stringLength p > maxPathLength || match storePathRegex p == null then
        throw ''cachixPackages: ${where}: "${cut p}" is not a store path (a file inside one?): list the package itself.''
      # A drvPath: Nix names no output .drv, so a store path that ends
      # so is a derivation's recipe, whose context would make the list
      # depend on every output of its whole build-time closure.
      else if match ".*[.]drv" p != null then
        throw ''cachixPackages: ${where}: "${p}" is a derivation (a .drv file), not a package: list the package itself (pkgs.hello, not pkgs.hello.drvPath).''
      else if !inContext p then
        throw ''cachixPackages: ${where}: "${p}" is not a store path its context names (${cut (concatStringsSep ", " (attrNames (getContext p)))}): a string made from a package ("''${pkg}-extra") names a path that does not exist. List the package itself.''
      else
        [ p ]
    else
      throw "cachixPackages: ${where}: a ${typeOf p} is not a package: list derivations (pkgs.hello, pkgs.hello.dev, pkgs.hello.all) or store paths with their context.";

  # The system the list's file is built for: that of the first package
  # that says (a pure flake evaluation has no builtins.currentSystem),
  # also inside a nested list (`[ pkg.all ]`).
  systemOf =
    packages:
    let
      flat = p: if isList p then concatMap flat p else [ p ];
      withSystem = filter (p: isAttrs p && p ? system) (flat packages);
    in
    if withSystem != [ ] then (head withSystem).system else builtins.currentSystem;

  # A derivation name part: the characters store names allow. Not one
  # ending in .list: the hook takes such a name for a list's file, never
  # for a list (pkglist.Named), and would ignore the list.
  validName = n: stringLength n <= 150 && match "[A-Za-z0-9+._?=-]+" n != null && substring 0 1 n != "." && match ".*[.]list" n == null;
in
{
  inherit magic;

  # cachixPackages { packages; targets ? null; name ? null; system ? ... }
  #
  # A package list: a small derivation, built locally and never
  # substituted, whose output is a directory (so that buildEnv profiles,
  # home.packages and environment.systemPackages, take it like any
  # package) recording the listed store paths. When Nix builds it, the
  # post-build-hook queues each listed path for the targets it names
  # (null: every target) that accept lists (`package_lists = true`).
  #
  # Nix rebuilds it exactly when the list, the targets or a listed package
  # change. It is two derivations, since a bare busybox /bin/sh (Nix's
  # sandbox shell) has no mkdir: NAME.list, a file written with shell
  # builtins alone, which refers to every listed path; and NAME, a
  # directory made by Nix's builtin:buildenv holding only a manifest.nix
  # symlink to it (which buildEnv, nix-env and nix profile leave out of
  # profiles; manifest.nix is where nix-env keeps a profile's own list).
  cachixPackages =
    {
      packages,
      targets ? null,
      name ? null,
      system ? null,
    }:
    let
      listed = pathsOf "packages" packages;
      # Each path once, in the order given: genericClosure keeps its
      # start set's order and finds a key seen in log n (a fold with
      # elem took minutes on 100,000 paths before the bound refused them).
      unique = map (e: e.key) (
        builtins.genericClosure {
          startSet = map (p: { key = p; }) listed;
          operator = _: [ ];
        }
      );
      drvName =
        if name == null then
          "cachix-packages"
        else if !(isString name) || !(validName name) then
          throw ''cachixPackages: name "${cut (toString name)}" must be letters, digits and +-._?= (at most 150, not starting with "." nor ending in ".list")''
        else
          "cachix-packages-${name}";
      targetLines =
        if targets == null then
          [ ]
        # No control character either (a carriage return, a tab, an
        # escape): the hook refuses such a target line, and with it the
        # whole list. No regex: Nix's overflows its stack on a long
        # name, before the size check below.
        else if !(isList targets) || targets == [ ] || !all (t: isString t && t != "" && oneLine t) targets then
          throw "cachixPackages: targets must be null (every target) or a non-empty list of target names (strings, one line each, with no control character, line separator nor bidirectional control: no carriage return, tab, escape or right-to-left override)"
        else if length targets > maxTargets then
          throw "cachixPackages: targets names ${toString (length targets)} targets; the hook reads at most ${toString maxTargets} in one list"
        # Read a byte at a time: not past the list's bound, which the
        # size check below refuses anyway.
        else if builtins.foldl' (n: t: n + stringLength t) 0 targets <= maxSize && !all utf8 targets then
          throw "cachixPackages: targets must be UTF-8, as the hook reads a target's name: a name holds a byte that is not (cut from text in another encoding?)"
        else
          map (t: "target ${t}") targets;
      text0 = concatStringsSep "\n" ([ magic ] ++ targetLines ++ unique) + "\n";
      text =
        if length unique > maxPaths then
          throw "cachixPackages: packages names ${toString (length unique)} store paths; the hook reads at most ${toString maxPaths} in one list: make several lists (each its own name)"
        else if stringLength text0 > maxSize then
          throw "cachixPackages: the list's file would be ${toString (stringLength text0)} bytes; the hook reads at most ${toString maxSize} (1 MiB) in one list: make several lists (each its own name), or name fewer targets"
        else
          text0;
      list = derivation {
        name = "${drvName}.list";
        system = if system != null then system else systemOf packages;
        builder = "/bin/sh";
        # read, printf and redirections: shell builtins, also in busybox
        # ash. The text comes in a file (passAsFile), not the script nor
        # the environment: no character of a name or a target is read as
        # shell syntax, and a long list does not pass the kernel's limit
        # on one environment string (128 KiB).
        args = [
          "-c"
          ''while IFS= read -r line; do printf '%s\n' "$line"; done < "$textPath" > "$out"''
        ];
        inherit text;
        passAsFile = [ "text" ];
        allowSubstitutes = false;
        preferLocalBuild = true;
      };
    in
    derivation {
      name = drvName;
      system = "builtin";
      builder = "builtin:buildenv";
      # No package goes into the directory; the manifest.nix symlink is
      # what refers to the list, and through it to every listed path.
      derivations = [ ];
      manifest = list;
      allowSubstitutes = false;
      preferLocalBuild = true;
    }
    // {
      # The file the hook reads, and the paths it lists.
      inherit list;
      listedPaths = unique;
    };
}
