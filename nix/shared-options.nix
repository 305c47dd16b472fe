# What the NixOS and home-manager modules share: their options, the
# assertions on them, and the settings they default. Each module imports it
# with where its options live and the prose that differs between the two:
#
#   imports = [ (import ./shared-options.nix { path = [ "services" "cachix-filter-hook" ]; ... }) ];
#
# An option both modules have is declared here, once; what a module does
# with it (the systemd unit, the activation script) stays in that module.
{
  # Where the options live: [ "services" "cachix-filter-hook" ] (NixOS) or
  # [ "programs" "cachix-filter-hook" ] (home-manager).
  path,
  # The rest is documentation: what `enable` turns on, where hook.conf is
  # written, examples, and when the activation pushes (`when`), what
  # (`root`, the shell variable holding the new generation) and the pin
  # name `pushOnActivation.pin = true` stands for (`pin`).
  # `profile` is where a package list goes so that the generation's
  # closure holds it: the option path ([ "system" "extraDependencies" ]
  # or [ "home" "extraDependencies" ]) and how the docs call it.
  enableText,
  configPath,
  storeExample,
  settingsExample,
  tokenExample,
  activation,
  profile,
}:
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkDefault
    mkEnableOption
    mkIf
    mkOption
    types
    ;

  cfg = lib.getAttrFromPath path config;
  name = lib.showOption path;

  settings = import ./settings.nix { inherit lib pkgs; };

  # NixOS always has one; home-manager's nix.package defaults to null.
  nixPackage = config.nix.package or null;

  # The packages (`pkg.all` flattened), and their package list
  # (nix/lib.nix), named after where it goes: cachix-packages-system,
  # cachix-packages-home.
  packages = lib.flatten cfg.packages;
  packageList = (import ./lib.nix { }).cachixPackages {
    inherit packages;
    inherit (profile) name;
  };

  # Whether any target is a Cachix cache (rather than a Nix store URI).
  usesCachix =
    cfg.settings.cache != null || lib.any (t: t ? cache) (cfg.settings.target or [ ]);

  # hook.conf's keys that name a secret's file, with their values.
  secretFileKeys =
    let
      s = cfg.settings;
    in
    [
      {
        key = "cachix.auth_token_file";
        value = s.cachix.auth_token_file or null;
      }
      {
        key = "cachix.signing_key_file";
        value = s.cachix.signing_key_file or null;
      }
      {
        key = "secret_key_file";
        value = s.secret_key_file or null;
      }
    ]
    ++ lib.imap0 (i: t: {
      key = "target[${toString i}].secret_key_file";
      value = t.secret_key_file or null;
    }) (s.target or [ ]);

  # The keys of secretFileKeys whose value is no absolute path, which the
  # program refuses only when hook.conf is built, with the value in the
  # world-readable store by then: it may be the secret itself
  # (auth_token_file = "eyJ..."), so it is not shown. A path literal
  # counts by the path it names, always absolute.
  secretFilesNotAbsolute = map (x: x.key) (
    lib.filter (
      { value, ... }:
      value != null && toString value != "" && !lib.hasPrefix "/" (toString value)
    ) secretFileKeys
  );

  # The secret files hook.conf names, with their keys, that are in the
  # Nix store ("${./token}", a pkgs.writeText): readable by every user,
  # and refused by the program at run time. A path literal counts by the
  # path it names (settings.nix writes that): /run/secrets/token is not
  # in the store, but ./token in a flake is (the flake's source is).
  #
  # A store URI's secret-key= names the key nix copy signs with, the same
  # secret, secret-keys= a comma-separated list of them (Nix 2.29 and
  # later), and ssh-key= and tls-private-key= (Nix 2.34 and later) the
  # private keys Nix logs in with: as Nix reads them, their name and
  # value %-decoded.
  secretsInStore =
    let
      s = cfg.settings;
      inStore = v: v != null && lib.hasPrefix "${builtins.storeDir}/" (toString v);
      # The URI is read without its context: percentDecode looks its
      # characters up as attribute names, which may not refer to a store
      # path (a key written as "${pkgs.writeText ...}" beside a %-escape).
      uriKeys =
        key: uri:
        lib.concatMap (
          param:
          let
            kv = lib.splitString "=" param;
            name = settings.percentDecode (lib.head kv);
            value = settings.percentDecode (lib.concatStringsSep "=" (lib.tail kv));
          in
          map (file: {
            key = "${key} (its ${name})";
            value = file;
          }) (
            if lib.length kv < 2 then
              [ ]
            else if name == "secret-key" || name == "ssh-key" || name == "tls-private-key" then
              [ value ]
            else if name == "secret-keys" then
              lib.splitString "," value
            else
              [ ]
          )
        ) (lib.splitString "&" (lib.concatStringsSep "?" (lib.tail (lib.splitString "?" (builtins.unsafeDiscardStringContext (toString uri))))));
    in
    lib.filter ({ value, ... }: inStore value) (
      secretFileKeys
      ++ uriKeys "store" (if s.store == null then "" else s.store)
      ++ lib.concatLists (
        lib.imap0 (i: t: uriKeys "target[${toString i}].store" (t.store or "")) (s.target or [ ])
      )
    );

  # The words that mark a secret's name, as the program's secretWords
  # (internal/config/storeuri.go) has them.
  secretWords = [
    "password"
    "passwd"
    "token"
    "secret"
    "auth"
    "credential"
  ];

  # The settings that carry a credential in a URI, as the program reads
  # them (storeCredentials and checkUpstream in
  # internal/config/storeuri.go and pathrules.go): a password in
  # scheme://user:password@, or a query parameter whose %-decoded name
  # holds password, passwd, token, secret, auth or credential (but
  # secret-key= and secret-keys=, the key files' paths). The program
  # refuses them only when hook.conf is built, and by then the value is
  # in the world-readable store (the .drv and the file): refused here, at
  # evaluation, without quoting the secret.
  credentialsIn =
    let
      # As Go's strings.ToLower: lib.toLower maps ASCII only, but Go maps
      # the Kelvin sign (U+212A) to k and U+0130 to i, the only others
      # it lowers to ASCII: "to\u212Aen=" is a token to the program.
      lowerAsGo =
        s:
        lib.toLower (
          builtins.replaceStrings [ (builtins.fromJSON ''"\u212a"'') (builtins.fromJSON ''"\u0130"'') ] [ "k" "i" ] s
        );
      # anyUser: a user alone counts too, as checkUpstream has it for an
      # upstream (https://TOKEN@host), where a store's ssh://nix@host is a
      # login name.
      check =
        anyUser: key: uri':
        let
          uri = builtins.unsafeDiscardStringContext (toString uri');
          afterScheme = lib.splitString "://" uri;
          # As url.Parse: a leading // starts an authority without a
          # scheme (validStore takes "//u:pw@host" as a path).
          schemeless = lib.hasPrefix "//" uri;
          hasAuthority = schemeless || lib.length afterScheme > 1;
          rest =
            if schemeless then
              lib.substring 2 (lib.stringLength uri) uri
            else
              lib.concatStringsSep "://" (lib.tail afterScheme);
          authority = builtins.head (builtins.split "[/?#]" rest);
          # As RedactURI: a password holding '/', '?' or '#' ends the
          # authority early; then it runs to the last '@'.
          userinfo =
            let
              upTo = s: lib.concatStringsSep "@" (lib.init (lib.splitString "@" s));
            in
            if lib.hasInfix "@" authority then
              upTo authority
            else if lib.hasInfix ":" authority then
              upTo rest
            else
              "";
          password = lib.concatStringsSep ":" (lib.tail (lib.splitString ":" userinfo));
          query = lib.concatStringsSep "?" (lib.tail (lib.splitString "?" (builtins.head (lib.splitString "#" uri))));
          secretParam =
            kv:
            let
              n = lowerAsGo (settings.percentDecode (builtins.head (lib.splitString "=" kv)));
            in
            n != "secret-key" && n != "secret-keys" && lib.any (w: lib.hasInfix w n) secretWords;
          params = lib.filter secretParam (if query == "" then [ ] else lib.splitString "&" query);
        in
        lib.optional (hasAuthority && password != "") "${key} carries a password (user:password@)"
        ++ lib.optional (
          anyUser && hasAuthority && password == "" && lib.hasInfix "@" authority
        ) "${key} carries a user (user@), which may be a token"
        ++ lib.optional (params != [ ]) "${key} carries a credential (its query parameter ${
          builtins.head (lib.splitString "=" (builtins.head params))
        })";
      s = cfg.settings;
      upstreams = key: l: lib.concatLists (lib.imap0 (i: u: check true "${key}[${toString i}]" u) l);
    in
    lib.optionals (s.store != null) (check false "store" s.store)
    ++ upstreams "upstream" (s.upstream or [ ])
    ++ lib.concatLists (
      lib.imap0 (
        i: t:
        lib.optionals (t ? store) (check false "target[${toString i}].store" t.store)
        ++ upstreams "target[${toString i}].upstream" (t.upstream or [ ])
      ) (s.target or [ ])
    );

  # The keys of settings named for a secret (auth_token, signing_key,
  # password...) that are not hook.conf's, which names secrets by their
  # file (*_file): settings is freeform, and such a key, refused only
  # when hook.conf is built, has its value, likely the secret, in the
  # store by then. Each as hook.conf would name it: cachix.auth_token,
  # target[0].secret_key.
  secretNamedKeys =
    let
      named =
        k:
        lib.any (w: lib.hasInfix w (lib.toLower k)) (secretWords ++ [ "key" ])
        && !lib.hasSuffix "_file" k;
      walk =
        prefix: v:
        if builtins.isAttrs v && !lib.isDerivation v then
          lib.concatLists (
            lib.mapAttrsToList (
              k: x:
              let
                key = if prefix == "" then k else "${prefix}.${k}";
              in
              lib.optional (named k) key ++ walk key x
            ) v
          )
        else if builtins.isList v then
          lib.concatLists (lib.imap0 (i: walk "${prefix}[${toString i}]") v)
        else
          [ ];
    in
    walk "" cfg.settings;

  act = cfg.pushOnActivation;
  pinName = if act.pin == true then activation.pin else act.pin;
  # Whether push takes pinName (cli/pin.go's checkPinTemplate): only the
  # placeholders {host} and {target}, and once they are filled, 1 to 200
  # of A-Z a-z 0-9 . _ + @ = : -, not starting with -. push refuses any
  # other, queueing nothing, and the activation's `|| true` hides it.
  pinNameValid =
    let
      placeholders = lib.filter builtins.isList (builtins.split "(\\{[^{}]*})" pinName);
      filled = builtins.replaceStrings [ "{host}" "{target}" ] [ "h" "t" ] pinName;
    in
    lib.all (p: lib.elem (builtins.head p) [ "{host}" "{target}" ]) placeholders
    && builtins.stringLength filled <= 200
    && builtins.match "[A-Za-z0-9._+@=:][A-Za-z0-9._+@=:-]*" filled != null;
  keeps = lib.filter (k: k != null) [
    (if act.keepRevisions != null then [ "--keep-revisions" (toString act.keepRevisions) ] else null)
    (if act.keepDays != null then [ "--keep-days" (toString act.keepDays) ] else null)
    (if act.keepForever then [ "--keep-forever" ] else null)
  ];
in
{
  # Declarations and definitions below are reported against this file.
  _file = ./shared-options.nix;

  options = lib.setAttrByPath path {
    enable = mkEnableOption enableText;

    # Over a set holding only the package rather than over pkgs, which has
    # cachix-filter-hook only when the flake's overlay is applied: without
    # it, the module builds the package itself.
    package = lib.mkPackageOption {
      cachix-filter-hook = pkgs.cachix-filter-hook or (pkgs.callPackage ./package.nix { });
    } "cachix-filter-hook" {
      extraDescription = ''
        By default the one the flake's overlay adds to pkgs; without the
        overlay, the one nix/package.nix builds with this configuration's
        nixpkgs.
      '';
    };

    settings = mkOption {
      type = settings.type { inherit storeExample; };
      default = { };
      example = literalExpression settingsExample;
      description = ''
        The contents of ${configPath}, as Nix values; the keys are those of
        hook.conf.example (`cache`, `store`, `allow`, `deny`, `hosts`,
        `closure_deny`, `strict`, `target`, `cachix.*`, `nix.*`, `queue.*`,
        `log.*`, `metrics.*`). The file is checked when it is built
        (`validate --config-only`): an unknown key fails the build.
        CACHIX_FILTER_HOOK_* environment variables still override it.
        A Nix path literal (a secret file such as `auth_token_file`,
        `queue.dir`, any key) is written as the path it names, never
        copied to the store (`"''${./file}"` copies one). `nix.bin_dir`
        defaults to `nix.package` when that is set, and
        `cachix.bin` to pkgs.cachix when a target is a Cachix cache: the
        nix-daemon that runs the hook, and an activation script, have
        neither on their PATH. Evaluation fails, before anything is
        written to the store, on a key named for a secret (holding token,
        password, secret, auth, credential or key) that is not one of
        hook.conf's `*_file` keys (`cachix.auth_token = "..."`: a secret
        is given as the path of its file), on a secret file that is in
        the store or not an absolute path (`auth_token_file = "eyJ..."`,
        the token itself), and on a `store` or `upstream` URI carrying
        credentials (`user:password@`, `?token=`, an upstream's `user@`):
        Nix's netrc file or an AWS profile (`?profile=NAME`) holds those.
      '';
    };

    authTokenFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = tokenExample;
      description = ''
        File holding the Cachix auth token, given to `cachix push` and
        `cachix pin` as CACHIX_AUTH_TOKEN; it sets `settings.cachix.auth_token_file`. It
        must be owned by the user who pushes (root for the NixOS service)
        and readable by no one else. Give it as a string: a Nix path
        literal would be fine too (it is not copied), but a token must
        never end up in the world-readable store.
      '';
    };

    packages = mkOption {
      # A list in the list is a package's outputs (`pkg.all`), as
      # cachixPackages takes it.
      type = types.listOf (types.either types.package (types.listOf types.package));
      default = [ ];
      example = literalExpression "[ pkgs.openc910 myApp.all otherApp.dev ]";
      description = ''
        Packages to push, chosen as Nix values rather than by name (a
        package stands for its default output; `pkg.dev` or `pkg.all` for
        others). A non-empty list puts a package list of them
        (`cachixPackages`, see the flake's `lib`) into ${profile.text}, and
        makes `settings.package_lists` default to true, so that every
        target takes lists: when the list changes, Nix builds it and the
        post-build-hook queues these packages, with their closures, also
        when they were substituted rather than built; deny and the other
        rules still decide. With `pushOnActivation`, each activation queues
        them again when the cache lost them (after `forget --pushed`).
        Note that package_lists is for every user's lists, not only this
        one: see the README's "Package lists" for what a local user can
        then push.
      '';
    };

    pushOnActivation = mkOption {
      # A bool, as before pins; an attribute set turns it on and says
      # how to pin.
      type = types.coercedTo types.bool (enable: { inherit enable; }) (
        types.submodule {
          options = {
            enable = mkOption {
              type = types.bool;
              default = true;
              description = "Whether to queue the new generation's closure on activation.";
            };
            pin = mkOption {
              type = types.either types.bool types.str;
              default = false;
              example = "{host}-{target}";
              description = ''
                Also pin the new generation (the root, not its closure) in
                every Cachix target that pushes it, once its closure is in
                that cache (`push --pin NAME`), so that Cachix's garbage
                collection keeps it: a name, in which `{host}` and
                `{target}` are replaced, or `true` for
                `"${activation.pin}"`. The root goes to those caches
                whatever `unsubstitutable` and `upstream` say. A Nix store
                target has no pins. The name must be one push takes, else
                evaluation fails: once `{host}` and `{target}` (the only
                placeholders) are filled, 1 to 200 of A-Z a-z 0-9 . _ + @
                = : -, not starting with -.
              '';
            };
            keepRevisions = mkOption {
              type = types.nullOr types.ints.positive;
              default = null;
              example = 5;
              description = "With `pin`: Cachix keeps this many revisions of the pin (cachix pin --keep-revisions).";
            };
            keepDays = mkOption {
              type = types.nullOr types.ints.positive;
              default = null;
              description = "With `pin`: Cachix keeps the pin's revisions this many days (--keep-days).";
            };
            keepForever = mkOption {
              type = types.bool;
              default = false;
              description = "With `pin`: Cachix keeps every revision of the pin (--keep-forever).";
            };
          };
        }
      );
      default = false;
      example = literalExpression "{ pin = true; keepRevisions = 5; }";
      description = ''
        Whether ${activation.when} also queues the selected paths of the
        new generation's whole closure (`cachix-filter-hook push --closure
        "${activation.root}"`), including paths that were substituted
        rather than built, which the post-build-hook never sees. It does
        not wait for the upload and never fails the activation; a dry run
        queues nothing. `true`, or an attribute set whose `pin` also pins
        the generation.
      '';
    };

    activationPushArgs = mkOption {
      type = types.listOf types.str;
      internal = true;
      readOnly = true;
      description = "The arguments of the activation's `cachix-filter-hook push`, before the root.";
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = !(cfg.settings.cache != null && cfg.settings.store != null);
            message = "${name}.settings: set `cache` or `store`, not both (add more destinations as `target` entries).";
          }
          {
            assertion = lib.length keeps <= 1;
            message = "${name}.pushOnActivation: keepRevisions, keepDays and keepForever exclude each other (as in cachix pin).";
          }
          {
            assertion = act.pin == false || usesCachix;
            message = "${name}.pushOnActivation.pin: no target is a Cachix cache, and a Nix store has no pins.";
          }
          {
            assertion = act.pin == false || pinNameValid;
            message = "${name}.pushOnActivation.pin: \"${pinName}\" is not a pin name push takes: 1 to 200 of A-Z a-z 0-9 . _ + @ = : -, not starting with -, once {host} and {target}, the only placeholders, are filled.";
          }
          {
            assertion = keeps == [ ] || act.pin != false;
            message = "${name}.pushOnActivation: keepRevisions, keepDays and keepForever go with pin.";
          }
          {
            assertion = secretsInStore == [ ];
            message = "${name}.settings: ${
              lib.concatMapStringsSep ", " (x: "${x.key} = \"${toString x.value}\"") secretsInStore
            } is in the Nix store, which every user can read: give the path of a file outside the store, owned by the user who pushes, mode 0600, as a string (authTokenFile for the token).";
          }
          {
            assertion = secretFilesNotAbsolute == [ ];
            message = "${name}.settings: ${lib.concatStringsSep ", " secretFilesNotAbsolute} is not an absolute path (the value is not shown: it may be the secret itself), and would be written to the world-readable Nix store: give the absolute path of the file holding the secret, outside the store, owned by the user who pushes, mode 0600.";
          }
          {
            assertion = secretNamedKeys == [ ];
            message = "${name}.settings: ${lib.concatStringsSep ", " secretNamedKeys} is no key of hook.conf, and its value would be written to the world-readable Nix store: hook.conf takes a secret as the path of its file (cachix.auth_token_file, or authTokenFile; cachix.signing_key_file; secret_key_file), outside the store, owned by the user who pushes, mode 0600.";
          }
          {
            assertion = credentialsIn == [ ];
            message = "${name}.settings: ${lib.concatStringsSep ", " credentialsIn}, which would be written to the world-readable Nix store with hook.conf, and given to nix copy in argv: put the credentials where Nix reads them itself (a netrc-file in nix.conf for http(s), an AWS profile named with ?profile=NAME for s3), or name a cache that answers without them.";
          }
          {
            # Without one, hook.conf is written but every command refuses it.
            assertion =
              cfg.settings.cache != null || cfg.settings.store != null || (cfg.settings.target or [ ]) != [ ];
            message = "${name}.settings: no destination: set `cache` (a Cachix cache), `store` (a Nix store URI) or `target`.";
          }
        ];
      }
      (lib.setAttrByPath path {
        activationPushArgs = [
          "push"
          "--closure"
        ]
        ++ lib.optionals (act.pin != false) ([
          "--pin"
          pinName
        ]
        ++ lib.concatLists keeps);
        settings = {
          # getExe' with the name: cachix's meta.mainProgram is not
          # something to depend on.
          cachix.bin = mkIf usesCachix (mkDefault (lib.getExe' pkgs.cachix "cachix"));
          nix.bin_dir = mkIf (nixPackage != null) (mkDefault "${lib.getBin nixPackage}/bin");
          cachix.auth_token_file = mkIf (cfg.authTokenFile != null) (toString cfg.authTokenFile);
          package_lists = mkIf (packages != [ ]) (mkDefault true);
        };
      })
      (mkIf (packages != [ ]) (lib.setAttrByPath profile.option [ packageList ]))
    ]
  );
}
