package config

import (
	"fmt"
	"strconv"
	"strings"
)

// Effective renders the configuration in force, as TOML with a comment
// saying where each value came from (file, environment variable or
// default). Store URIs have their passwords redacted; the token file's
// path is shown, never its content.
func (c *Config) Effective() string {
	var b strings.Builder
	src := func(key string) string {
		if s := c.sources[key]; s != "" {
			return "  # " + s
		}
		return ""
	}
	if c.File != "" {
		fmt.Fprintf(&b, "# config file: %s\n", c.File)
	} else {
		fmt.Fprintf(&b, "# no config file: environment and defaults only\n")
	}
	fmt.Fprintf(&b, "strict = %v%s\n", c.Strict, src("strict"))
	fmt.Fprintf(&b, "upstream_timeout = %q%s\n", c.UpstreamTimeout, src("upstream_timeout"))
	fmt.Fprintf(&b, "upstream_deadline = %q%s\n", c.UpstreamDeadline, src("upstream_deadline"))
	for i, t := range c.Targets {
		// The default target's keys are top-level keys, which the
		// environment can override: say where each came from.
		tsrc := func(key string) string {
			if t.top {
				return src(key)
			}
			return ""
		}
		fmt.Fprintf(&b, "\n[[target]]  # %d\n", i)
		fmt.Fprintf(&b, "name = %s%s\n", strconv.Quote(t.Name), tsrc("name"))
		if t.Cache != "" {
			fmt.Fprintf(&b, "cache = %s%s\n", strconv.Quote(t.Cache), tsrc("cache"))
		} else {
			fmt.Fprintf(&b, "store = %s%s\n", strconv.Quote(RedactURI(t.Store)), tsrc("store"))
		}
		fmt.Fprintf(&b, "allow = %s%s\n", quoteList(t.Allow), tsrc("allow"))
		fmt.Fprintf(&b, "deny = %s%s\n", quoteList(t.Deny), tsrc("deny"))
		fmt.Fprintf(&b, "closure_deny = %s%s\n", strconv.Quote(t.ClosureDeny), tsrc("closure_deny"))
		t.effectivePathRules(&b, tsrc)
	}
	fmt.Fprintf(&b, "\n[cachix]\n")
	fmt.Fprintf(&b, "bin = %s%s\n", strconv.Quote(c.Cachix.Bin), src("cachix.bin"))
	fmt.Fprintf(&b, "auth_token_file = %s%s\n", strconv.Quote(c.Cachix.AuthTokenFile), src("cachix.auth_token_file"))
	fmt.Fprintf(&b, "push_args = %s%s\n", quoteList(c.Cachix.PushArgs), src("cachix.push_args"))
	fmt.Fprintf(&b, "signing_key_file = %s%s\n", strconv.Quote(c.Cachix.SigningKeyFile), src("cachix.signing_key_file"))
	fmt.Fprintf(&b, "\n[nix]\n")
	fmt.Fprintf(&b, "bin_dir = %s%s\n", strconv.Quote(c.Nix.BinDir), src("nix.bin_dir"))
	fmt.Fprintf(&b, "\n[queue]\n")
	fmt.Fprintf(&b, "dir = %s%s\n", strconv.Quote(c.Queue.Dir), src("queue.dir"))
	fmt.Fprintf(&b, "batch = %d%s\n", c.Queue.Batch, src("queue.batch"))
	fmt.Fprintf(&b, "retry_initial = %q%s\n", c.Queue.RetryInitial, src("queue.retry_initial"))
	fmt.Fprintf(&b, "retry_max = %q%s\n", c.Queue.RetryMax, src("queue.retry_max"))
	fmt.Fprintf(&b, "linger = %q%s\n", c.Queue.Linger, src("queue.linger"))
	fmt.Fprintf(&b, "push_timeout = %q%s\n", c.Queue.PushTimeout, src("queue.push_timeout"))
	fmt.Fprintf(&b, "remember_pushed = %q%s\n", c.Queue.RememberPushed, src("queue.remember_pushed"))
	fmt.Fprintf(&b, "\n[log]\n")
	fmt.Fprintf(&b, "file = %s%s\n", strconv.Quote(c.Log.File), src("log.file"))
	fmt.Fprintf(&b, "level = %s%s\n", strconv.Quote(c.Log.Level), src("log.level"))
	fmt.Fprintf(&b, "max_size = %d%s\n", c.Log.MaxSize, src("log.max_size"))
	return b.String()
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
