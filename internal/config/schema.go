package config

import (
	"strconv"
	"strings"
	"time"
)

// The schema: every key hook.conf knows, once. Loading, the unknown-key
// and spelling checks, the environment overrides, validate's output and
// hook.conf.example (Example) are all derived from keys.

type kind int

const (
	kString kind = iota
	kBool
	kInt
	kDuration
	kSize
	kList
	kTargets
)

var kindNames = map[kind]string{
	kString: "a string", kBool: "a boolean", kInt: "an integer",
	kDuration: `a duration such as "2s" or "10m"`, kSize: `a size such as "10MiB"`,
	kList: "a list of strings", kTargets: "an array of tables ([[target]])",
}

// scope says where a key stands and what it configures.
type scope int

const (
	// sTop: top level only (strict, upstream_timeout).
	sTop scope = iota
	// sTarget: a key of the default target at the top level, and of
	// each [[target]].
	sTarget
	// sInherited: at the top level every target's default; in a
	// [[target]] its own (see pathrules.go).
	sInherited
	// sTables: the array of [[target]] tables.
	sTables
	// sSection: a key of a [table] (cachix, nix, queue, log).
	sSection
)

// key describes one key of hook.conf.
type key struct {
	name  string // "allow", "queue.dir"
	kind  kind
	scope scope
	// def is the default, as the loader sets it; nil: the zero value,
	// or (defFn) computed when loading.
	def   any
	defFn func() any
	// field points at the key's value in a Config (top and section
	// keys) or a Target (target and inherited keys).
	field       func(c *Config) any
	targetField func(t *Target) any
	// For validate: only tells whether a target shows the key (nil:
	// every one), show renders its value (nil: by its kind).
	only func(t *Target) bool
	show func(v any) string
	// For hook.conf.example: group opens a paragraph before the key;
	// doc is the comment above it, note the one beside it; example is
	// the value it shows (TOML; "" shows the default), commented out
	// when hidden; defDoc says what the default is when def cannot.
	group, doc, note string
	example          string
	hidden           bool
	defDoc           string
}

// keys are hook.conf's keys, in the order hook.conf.example and validate
// show them.
var keys = []key{
	{name: "name", kind: kString, scope: sTarget, targetField: func(t *Target) any { return &t.Name },
		group:   "The default target: exactly one of `cache` (a Cachix cache, pushed with\n`cachix push`) or `store` (any Nix store URI, pushed with `nix copy`), with\nan optional display name.",
		example: `"main"`, hidden: true, defDoc: "the cache name, or the store URI"},
	{name: "cache", kind: kString, scope: sTarget, targetField: func(t *Target) any { return &t.Cache },
		only: func(t *Target) bool { return t.Cache != "" }, example: `"mycache"`},
	{name: "store", kind: kString, scope: sTarget, targetField: func(t *Target) any { return &t.Store },
		only: func(t *Target) bool { return t.Cache == "" }, show: func(v any) string { return quoteTOML(RedactURI(v.(string))) },
		doc:     "A store URI must carry no credentials (https://user:password@host,\n?token=..., ?aws_secret_access_key=...): nix copy gets it in argv, which\nevery user can read. Put them in Nix's netrc file (netrc-file in\nnix.conf) or, for s3, in an AWS profile (s3://bucket?profile=NAME).\nThe files its secret-key=, secret-keys=, ssh-key= and tls-private-key=\nname must be absolute paths and pass the token file's rules, and a\nfile:/// directory must be owned and writable by the worker's user\n(root) alone, as the directories above it: the worker refuses to push\notherwise, as validate says.",
		example: `"file:///var/cache/nix"`, hidden: true},
	{name: "allow", kind: kList, scope: sTarget, targetField: func(t *Target) any { return &t.Allow },
		example: `["hello-*"]`, defDoc: "[] (push nothing)"},
	{name: "deny", kind: kList, scope: sTarget, targetField: func(t *Target) any { return &t.Deny },
		example: `["*-doc"]`},
	{name: "hosts", kind: kList, scope: sTarget, targetField: func(t *Target) any { return &t.Hosts },
		only:    func(t *Target) bool { return t.HostRules != nil },
		doc:     "One config for a fleet: the host names (globs, as the patterns above,\nmatched against the kernel's host name, `uname -n`, ignoring case) on\nwhich this target is on. Elsewhere it is off, and every message says so:\n\"skip PATH (target main is for hosts builder-*; this is laptop)\". No\nvariable can fake the host name.",
		example: `["builder-*", "ci-*"]`, hidden: true, defDoc: "every host"},
	{name: "closure_deny", kind: kString, scope: sTarget, def: ClosureSkip, targetField: func(t *Target) any { return &t.ClosureDeny },
		doc: "What to do when a selected path depends on a denied one, or on one\nlarger than max_nar_size (pushers upload whole closures;\ncachix/cachix#387's question).\n" +
			"  \"skip\": leave the selected path out too, naming the dependency and the\n          rule: explain and push --dry-run say \"skip PATH (closure_deny =\n          \"skip\": its closure contains DEP, denied by ...)\", the worker\n          drops it with that reason (log, dropped/, wait). Deny wins. The\n          default since issue 9 (it was \"push\").\n" +
			"  \"push\": push it; the dependency goes up inside its closure, and every\n          message says so, never \"skip\": explain and push --dry-run (\"also\n          uploads DEP ...\"; for DEP itself \"denied DEP (...), but uploaded\n          -> TARGET inside the closure of PATH\"), the worker log, and the\n          hook's line when DEP is a sibling output of the same build.\n" +
			"The hook runs no Nix command: for dependencies from earlier builds its\nline says \"queued\" and the worker decides (explain shows what it will)."},
	{name: "package_lists", kind: kBool, scope: sInherited, def: false, targetField: func(t *Target) any { return &t.PackageLists },
		doc: "true: push what package lists name, with no allow rule for it. A list is\nwhat cachixPackages builds (nix/lib.nix; the flake's lib.cachixPackages;\nthe modules' `packages` option): when Nix builds one, the hook queues each\npath it names for this target (if the list names it, or no target); deny\nstill wins, and the other rules decide as for any path. Any local user\ncan build a list: the worker pushes only what the list really depends on\n(never a path it names only as text), but that can be any store path\nthey can refer to, with its closure (README: Package lists). Set here,\nevery target's default; a [[target]] may set its own."},
	{name: "max_nar_size", kind: kSize, scope: sInherited, targetField: func(t *Target) any { return &t.MaxNarSize },
		show: func(v any) string {
			if n := v.(int64); n > 0 {
				return strconv.Quote(HumanSize(n))
			}
			return `"none"`
		},
		group:   "Rules that look beyond the name. Each of these four keys set here is the\ndefault of every target (the default one and each [[target]]); a\n[[target]] may set its own, which overrides it. They apply to a path the\npatterns select; `explain` shows which one decided, with its figure.",
		doc:     "A path whose NAR is larger is treated like a denied path: not pushed\n(\"larger than max_nar_size (NAR 1.3 GiB, limit 1.0 GiB)\"), and\nclosure_deny decides about the paths that depend on it. Sizes come from\none Nix query per batch, in push, explain and the worker (never in\nthe hook).",
		example: `"1GiB"`, hidden: true, defDoc: "no limit"},
	{name: "unsubstitutable", kind: kString, scope: sInherited, def: UnsubstSkip, targetField: func(t *Target) any { return &t.Unsubstitutable },
		doc: "\"skip\": a path whose derivation sets allowSubstitutes = false (writeText,\nrunCommandLocal, symlinkJoin...) is not pushed: Nix builds it rather than\ndownload it. Read from the .drv (the hook reads the one it was given); a\npath whose .drv is gone counts as substitutable. \"push\": push them too."},
	{name: "upstream", kind: kList, scope: sInherited, targetField: func(t *Target) any { return &t.Upstream },
		doc:     "Binary caches that already serve paths: a path one of them has is not\npushed (\"already in https://cache.nixos.org\"). Asked over HTTP(S) with a\nGET of <hash>.narinfo (8 requests at a time, each bounded by\nupstream_timeout, a round of them by upstream_deadline), or read\ndirectly for file:///dir (which must pass the trust rule, as the config\ndoes); the worker remembers the answers. Only a narinfo whose StorePath\nis the path asked counts: any other 200 (a captive portal, a wrong URL)\nor a redirect to another host is a warning, and the path is pushed. So\nis a path an upstream did not answer for in time; the upstream is then\nshown as slow by `status` and `doctor`. A queued path found upstream is\ndone, not dropped: `wait` does not fail on it.",
		example: `["https://cache.nixos.org"]`, hidden: true, defDoc: "[] (ask nobody)"},
	{name: "upstream_timeout", kind: kDuration, scope: sTop, def: DefaultUpstreamTimeout, field: func(c *Config) any { return &c.UpstreamTimeout },
		note: "top level only"},
	{name: "upstream_deadline", kind: kDuration, scope: sTop, def: DefaultUpstreamDeadline, field: func(c *Config) any { return &c.UpstreamDeadline },
		note: "top level only"},
	{name: "secret_key_file", kind: kString, scope: sInherited, targetField: func(t *Target) any { return &t.SecretKeyFile },
		only:    func(t *Target) bool { return t.Store != "" },
		doc:     "Store targets only: sign the paths with this Nix secret key (from\n`nix-store --generate-binary-cache-key`) as they are copied, so that the\ncache's narinfo files carry Sig:. Nix is given the file's path, never its\ncontent; it must pass the same ownership and mode rules as the token file\n(owner root, mode 0600 when running as root). Not beside a store URI's own\nsecret-key= (Nix signs with one of them only): refused. For a Cachix cache,\nsee cachix.signing_key_file.",
		example: `"/etc/cachix-filter-hook/cache-key.sec"`, hidden: true},
	{name: "strict", kind: kBool, scope: sTop, def: false, field: func(c *Config) any { return &c.Strict },
		doc: "true makes the hook exit non-zero when it fails (bad config, full disk),\nwhich stops Nix from starting further builds. Default false: a failure is\nreported on the build log and the build goes on. It counts in a config\nthat is otherwise invalid, unless this file fails the trust rule; or set\nCACHIX_FILTER_HOOK_STRICT=1."},
	{name: "target", kind: kTargets, scope: sTables,
		doc: "More destinations. Each has cache|store, name, allow, deny, closure_deny,\nand may override max_nar_size, unsubstitutable, upstream,\nsecret_key_file and package_lists."},

	{name: "cachix.bin", kind: kString, scope: sSection, def: DefaultCachixBin, field: func(c *Config) any { return &c.Cachix.Bin },
		note: "executable: PATH lookup or absolute path\n(the NixOS module sets pkgs.cachix: nix-daemon's\nPATH has no cachix)"},
	{name: "cachix.auth_token_file", kind: kString, scope: sSection, field: func(c *Config) any { return &c.Cachix.AuthTokenFile },
		note: "its content is given to cachix as CACHIX_AUTH_TOKEN"},
	{name: "cachix.push_args", kind: kList, scope: sSection, field: func(c *Config) any { return &c.Cachix.PushArgs },
		note: `extra options of ` + "`push`" + `, e.g. ["-j", "8"];` + "\ncachix's global ones (-c, --host or\n--hostname, -v) go before the command,\nfor pin too"},
	{name: "cachix.signing_key_file", kind: kString, scope: sSection, field: func(c *Config) any { return &c.Cachix.SigningKeyFile },
		note: "for self-signed caches: its content (a Nix\nsecret key) is given to cachix as\nCACHIX_SIGNING_KEY, never in argv or logs; the\nfile is checked like auth_token_file"},
	{name: "nix.bin_dir", kind: kString, scope: sSection, field: func(c *Config) any { return &c.Nix.BinDir },
		note: "directory with nix and nix-store; default: PATH,\nthen /run/current-system/sw/bin and\n/nix/var/nix/profiles/default/bin (the NixOS\nmodule sets the system's Nix). When set, it also\ngoes first on cachix's PATH, so that the\nnix-store cachix runs is the one checked"},
	{name: "queue.dir", kind: kString, scope: sSection, defFn: func() any { return DefaultQueueDir() }, field: func(c *Config) any { return &c.Queue.Dir },
		example: `""`, note: "default /var/lib/cachix-filter-hook as root,\nelse $XDG_STATE_HOME/cachix-filter-hook\n(~/.local/state/cachix-filter-hook)"},
	{name: "queue.batch", kind: kInt, scope: sSection, def: DefaultBatch, field: func(c *Config) any { return &c.Queue.Batch },
		note: "at most this many paths per pusher call, per\ntarget (and as many as fit in argv): a backlog\ngoes up in few calls; a failing batch is halved"},
	{name: "queue.retry_initial", kind: kDuration, scope: sSection, def: DefaultRetryInitial, field: func(c *Config) any { return &c.Queue.RetryInitial },
		note: "first back-off after a failed push"},
	{name: "queue.retry_max", kind: kDuration, scope: sSection, def: DefaultRetryMax, field: func(c *Config) any { return &c.Queue.RetryMax },
		note: "back-off cap"},
	{name: "queue.linger", kind: kDuration, scope: sSection, def: DefaultLinger, field: func(c *Config) any { return &c.Queue.Linger },
		note: "how long a worker started by the hook waits\nfor more paths once the queue is empty"},
	{name: "queue.push_timeout", kind: kDuration, scope: sSection, def: DefaultPushTimeout, field: func(c *Config) any { return &c.Queue.PushTimeout },
		note: "a pusher running longer is killed with its\nwhole process group; the batch counts as\nfailed (\"timed out after 1h\") and backs off"},
	{name: "queue.remember_pushed", kind: kDuration, scope: sSection, def: DefaultRememberPushed, field: func(c *Config) any { return &c.Queue.RememberPushed },
		note: "the worker records what it pushed per cache\n(<dir>/pushed/); the hook and push leave a\nrecorded path out for this long, without a\npusher call. \"0\" keeps no record. After\nemptying a cache: forget --pushed"},
	{name: "queue.dropped_max", kind: kInt, scope: sSection, def: DefaultDroppedMax, field: func(c *Config) any { return &c.Queue.DroppedMax },
		note: "the worker keeps at most this many entries in\ndropped/ (what it gave up on, with why) and\nfiles in corrupt/, the oldest going first (not\nthose of the last 10 minutes, which wait\nreports); 0: no limit. `log` keeps every drop"},
	{name: "queue.dropped_max_age", kind: kDuration, scope: sSection, def: DefaultDroppedMaxAge, field: func(c *Config) any { return &c.Queue.DroppedMaxAge },
		note: "and none older than this; \"0\": no limit"},
	{name: "log.file", kind: kString, scope: sSection, field: func(c *Config) any { return &c.Log.File },
		example: `""`, note: "default <queue.dir>/worker.log; a regular file\nof the worker's user and of one name (no hard\nlink), in directories that pass the trust rule\n(validate and doctor open it as the worker will)"},
	{name: "log.level", kind: kString, scope: sSection, def: DefaultLogLevel, field: func(c *Config) any { return &c.Log.Level },
		note: "panic, fatal, error, warn, info, debug, trace"},
	{name: "log.max_size", kind: kSize, scope: sSection, def: int64(DefaultLogMaxSize), field: func(c *Config) any { return &c.Log.MaxSize },
		example: `"10MiB"`, note: "the log is rotated to <file>.1 past this size"},
	{name: "metrics.file", kind: kString, scope: sSection, field: func(c *Config) any { return &c.Metrics.File },
		example: `"/var/lib/prometheus-node-exporter/cachix_filter_hook.prom"`, hidden: true,
		group: "Metrics in Prometheus' text format (see README, \"Fleets\"): the worker\nrewrites this file (a temporary file renamed over it, mode 0644) each\nround and on every change, for node exporter's textfile collector\n(--collector.textfile.directory); `status --prometheus` prints the same.\nIts directories must pass the trust rule. Default: none."},
}

// Defaults of the optional keys.
const (
	DefaultCachixBin = "cachix"
	// DefaultBatch is large: a backlog (a NixOS closure after a switch)
	// goes up in few pusher calls, each bounded by argv size too (see
	// pusher.ArgBudget); a burst of builds is gathered by the worker's
	// timing, not by this bound.
	DefaultBatch = 10000
	// DefaultRememberPushed is how long a path recorded as pushed is
	// left out without asking the cache: Cachix garbage-collects by last
	// access, so a record does not count forever.
	DefaultRememberPushed = 30 * 24 * time.Hour
	// DefaultDroppedMax and DefaultDroppedMaxAge bound dropped/ and
	// corrupt/ (the history keeps the record of every drop).
	DefaultDroppedMax    = 1000
	DefaultDroppedMaxAge = 30 * 24 * time.Hour
	DefaultRetryInitial  = 2 * time.Second
	DefaultRetryMax      = 10 * time.Minute
	DefaultLinger        = 3 * time.Second
	DefaultPushTimeout   = time.Hour
	DefaultLogLevel      = "info"
	DefaultLogMaxSize    = 10 << 20
	// DefaultUpstreamTimeout bounds one narinfo request to an upstream
	// cache.
	DefaultUpstreamTimeout = 5 * time.Second
	// DefaultUpstreamDeadline bounds one round of questions to the
	// upstream caches (a worker's round, one push or explain): past it
	// the paths not answered are pushed.
	DefaultUpstreamDeadline = 30 * time.Second
)

// The lookups the loader uses, made from keys.
var (
	byName     = map[string]*key{} // every key, by its dotted name
	targetKeys = map[string]*key{} // the keys a [[target]] table may have
	sections   = map[string]bool{} // the [tables]: cachix, nix, queue, log
)

func init() {
	for i := range keys {
		k := &keys[i]
		byName[k.name] = k
		switch k.scope {
		case sTarget, sInherited:
			targetKeys[k.name] = k
		case sSection:
			sec, _, _ := strings.Cut(k.name, ".")
			sections[sec] = true
		}
	}
}

// EnvName is the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// LookupEnv is the value of key in env, a child's environment, and
// whether it is set there: the last of duplicates, which exec keeps.
func LookupEnv(env []string, key string) (string, bool) {
	v, set := "", false
	for _, kv := range env {
		if rest, ok := strings.CutPrefix(kv, key+"="); ok {
			v, set = rest, true
		}
	}
	return v, set
}
