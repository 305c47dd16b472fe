package config

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Issue 18: viper folds the case of keys, so `Deny = []` after a deny
// list made it vanish (explain then said "push …-doc (allow "*")"), and
// DENY or CACHE were accepted though keys are lower case. Every spelling
// but the one is an error naming both, in the file and the environment.
func TestOneSpellingPerKey(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		why, conf string
		want      []string
	}{
		{"deny and Deny", "cache = \"c\"\nallow = [\"*\"]\ndeny = [\"*-doc\"]\nDeny = []\n", []string{`keys "Deny" and "deny" fold to the same name`, `keep one, spelt "deny"`}},
		{"upper-case key", "cache = \"c\"\nallow = [\"*\"]\nDENY = [\"*-doc\"]\n", []string{`key "DENY": keys are lower case (did you mean "deny"?)`}},
		{"upper-case cache", "CACHE = \"c\"\nallow = [\"*\"]\n", []string{`key "CACHE": keys are lower case (did you mean "cache"?)`}},
		{"in a section", minimal + "Dir = \"/q2\"\n", []string{`keys "queue.Dir" and "queue.dir" fold to the same name`}},
		{"upper-case section", "cache = \"c\"\nallow = [\"*\"]\n[QUEUE]\ndir = \"/q\"\n", []string{`key "QUEUE": keys are lower case (did you mean "queue"?)`}},
		{"in a target", minimal + "[[target]]\ncache = \"w\"\nallow = [\"*\"]\nALLOW = []\n", []string{`[[target]] #1: keys "ALLOW" and "allow" fold to the same name`}},
		// TOML lets a section's key be written as a quoted dotted key at
		// the top level too: both at once name one key twice.
		{"quoted dotted key and its table", "cache = \"c\"\nallow = [\"*\"]\n\"queue.dir\" = \"/a\"\n[queue]\ndir = \"/b\"\n", []string{`"queue.dir" is set twice: as the top-level key "queue.dir" and as dir in [queue]`}},
		{"quoted dotted key and a dotted key", "cache = \"c\"\nallow = [\"*\"]\n\"cachix.push_args\" = []\ncachix.push_args = [\"-j\", \"8\"]\n", []string{`"cachix.push_args" is set twice`}},
		{"unknown and upper case", "cache = \"c\"\nallow = [\"*\"]\nALOW = []\n", []string{`unknown key "ALOW": keys are lower case (did you mean "allow"?)`}},
	} {
		t.Run(tc.why, func(t *testing.T) {
			file := write(t, filepath.Join(dir, strings.ReplaceAll(tc.why, " ", "_"), "hook.conf"), tc.conf)
			_, err := Load(file)
			if err == nil {
				t.Fatalf("Load succeeded on:\n%s", tc.conf)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), file+":") || !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}

	file := write(t, filepath.Join(dir, "ok", "hook.conf"), minimal)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CACHIX_FILTER_HOOK_deny": "*-doc"}, "CACHIX_FILTER_HOOK_deny: variable names are upper case (did you mean CACHIX_FILTER_HOOK_DENY?)"},
		{map[string]string{"CACHIX_FILTER_HOOK_DENY": "*-doc", "CACHIX_FILTER_HOOK_Deny": "x"}, "CACHIX_FILTER_HOOK_DENY and CACHIX_FILTER_HOOK_Deny: variables that differ only by case: only CACHIX_FILTER_HOOK_DENY is read"},
		{map[string]string{"cachix_filter_hook_cache": "x"}, "cachix_filter_hook_cache: variable names are upper case (did you mean CACHIX_FILTER_HOOK_CACHE?)"},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		if _, err := Load(file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: Load = %v, want %q", tc.env, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

// Issue 18: unknown tables were accepted silently ([t.x]); they are
// errors naming the closest table.
func TestUnknownTables(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	for conf, want := range map[string]string{
		minimal + "[t.x]\n":                           "unknown table [t.x]",
		"cache = \"c\"\n[queu]\ndir = \"/q\"\n":       "unknown table [queu] (did you mean [queue]?)",
		minimal + "[[targets]]\ncache = \"w\"\n":      "unknown table [targets] (did you mean [target]?)",
		minimal + "[queue.retry]\ninitial = \"1s\"\n": "unknown table [queue.retry]",
	} {
		file := write(t, filepath.Join(dir, "hook.conf"), conf)
		if _, err := Load(file); err == nil || !strings.Contains(err.Error(), file+":") || !strings.Contains(err.Error(), ": "+want) {
			t.Errorf("%q: Load = %v, want %q", conf, err, want)
		}
	}
}

// Issue 18: dotted keys and table headers built levels the nesting
// guard did not count: 40,000 of them in 80 KB took 2.8 GB and 7 s.
func TestNestingCountsKeysAndHeaders(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	deep := func(n int) string { return strings.TrimSuffix(strings.Repeat("a.", n), ".") }
	for _, tc := range []struct {
		conf string
		want string // "" for none about nesting
	}{
		{minimal + deep(MaxNesting+2) + " = 1\n", "line 5: dotted keys nest deeper than 32 levels"},
		{minimal + "[" + deep(MaxNesting+1) + "]\n", "line 5: table headers nest deeper than 32 levels"},
		{minimal + "[[" + deep(MaxNesting+1) + "]]\n", "table headers nest deeper"},
		{minimal + "[" + deep(20) + "]\n" + deep(13) + " = [1]\n", "line 6: arrays and inline tables nest deeper"},
		{minimal + "x = {" + deep(MaxNesting+1) + " = 1}\n", "dotted keys nest deeper"},
		{minimal + "[" + deep(MaxNesting) + "]\n", ""},
		{minimal + deep(MaxNesting) + " = 1\n", ""},   // [queue] is one level
		{minimal + "\"" + deep(100) + "\" = 1\n", ""}, // one quoted part
	} {
		_, err := Load(write(t, filepath.Join(dir, "hook.conf"), tc.conf))
		switch {
		case err == nil:
			t.Errorf("%.60q… loaded", tc.conf)
		case tc.want == "" && strings.Contains(err.Error(), "nest deeper"):
			t.Errorf("%.60q…: %v", tc.conf, err)
		case tc.want != "" && !strings.Contains(err.Error(), tc.want):
			t.Errorf("%.60q…: %v, want %q", tc.conf, err, tc.want)
		}
	}
}

// Every key of hook.conf.example is a key of the schema and the other
// way round, and each one is read from the file and from its variable,
// shown by validate with where it came from, and refused in upper case
// with the lower-case suggestion.
func TestEveryKeyOfTheExample(t *testing.T) {
	isolate(t)
	inExample := exampleKeys(t)
	var inSchema []string
	for _, k := range keys {
		inSchema = append(inSchema, k.name)
	}
	slices.Sort(inSchema)
	if !slices.Equal(inExample, inSchema) {
		t.Fatalf("hook.conf.example has %q\nthe schema has %q", inExample, inSchema)
	}
	q := t.TempDir()
	// key: its value in the file and in the environment, and the line
	// validate shows.
	samples := map[string][3]string{
		"name":                    {`"n1"`, "n1", `name = "n1"`},
		"cache":                   {`"c2"`, "c2", `cache = "c2"`},
		"store":                   {`"file:///srv/s2"`, "file:///srv/s2", `store = "file:///srv/s2"`},
		"allow":                   {`["a-*"]`, "a-*", `allow = ["a-*"]`},
		"deny":                    {`["d-*"]`, "d-*", `deny = ["d-*"]`},
		"closure_deny":            {`"push"`, "push", `closure_deny = "push"`},
		"max_nar_size":            {`"2MiB"`, "2MiB", `max_nar_size = "2MiB"`},
		"unsubstitutable":         {`"push"`, "push", `unsubstitutable = "push"`},
		"package_lists":           {`true`, "true", `package_lists = true`},
		"upstream":                {`["https://up.example"]`, "https://up.example", `upstream = ["https://up.example"]`},
		"upstream_timeout":        {`"7s"`, "7s", `upstream_timeout = "7s"`},
		"upstream_deadline":       {`"1m"`, "1m", `upstream_deadline = "1m"`},
		"secret_key_file":         {`"/etc/k"`, "/etc/k", `secret_key_file = "/etc/k"`},
		"strict":                  {`true`, "true", `strict = true`},
		"cachix.bin":              {`"/opt/cachix"`, "/opt/cachix", `bin = "/opt/cachix"`},
		"cachix.auth_token_file":  {`"/etc/tok"`, "/etc/tok", `auth_token_file = "/etc/tok"`},
		"cachix.push_args":        {`["-j", "4"]`, "-j 4", `push_args = ["-j", "4"]`},
		"cachix.signing_key_file": {`"/etc/sk"`, "/etc/sk", `signing_key_file = "/etc/sk"`},
		"nix.bin_dir":             {`"/opt/nix/bin"`, "/opt/nix/bin", `bin_dir = "/opt/nix/bin"`},
		"queue.dir":               {`"` + q + `/q2"`, q + "/q2", `dir = "` + q + `/q2"`},
		"queue.batch":             {`7`, "7", `batch = 7`},
		"queue.retry_initial":     {`"3s"`, "3s", `retry_initial = "3s"`},
		"queue.retry_max":         {`"20m"`, "20m", `retry_max = "20m"`},
		"queue.linger":            {`"4s"`, "4s", `linger = "4s"`},
		"queue.push_timeout":      {`"2h"`, "2h", `push_timeout = "2h"`},
		"queue.remember_pushed":   {`"1h"`, "1h", `remember_pushed = "1h"`},
		"queue.dropped_max":       {`50`, "50", `dropped_max = 50`},
		"queue.dropped_max_age":   {`"2h"`, "2h", `dropped_max_age = "2h"`},
		"log.file":                {`"/tmp/x.log"`, "/tmp/x.log", `file = "/tmp/x.log"`},
		"log.level":               {`"debug"`, "debug", `level = "debug"`},
		"log.max_size":            {`"2MiB"`, "2MiB", `max_size = "2MiB"`},
		"metrics.file":            {`"/tmp/m.prom"`, "/tmp/m.prom", `file = "/tmp/m.prom"`},
		"hosts":                   {`["b-*"]`, "b-*", `hosts = ["b-*"]`},
	}
	dir := t.TempDir()
	for _, k := range keys {
		t.Run(k.name, func(t *testing.T) {
			if k.kind == kTargets {
				file := write(t, filepath.Join(dir, k.name, "hook.conf"), base(k.name, q)+"[[target]]\ncache = \"w\"\nallow = [\"*\"]\n")
				c, err := Load(file)
				if err != nil || len(c.Targets) != 2 || !strings.Contains(c.Effective(), "[[target]]  # [[target]] #1\nname = \"w\"  # default\ncache = \"w\"  # file\n") {
					t.Errorf("a [[target]]: %v", err)
				}
				return
			}
			s, ok := samples[k.name]
			if !ok {
				t.Fatalf("no sample value for %s: add one", k.name)
			}
			sec, name, inSection := strings.Cut(k.name, ".")
			if !inSection {
				name = sec
			}
			put := func(spelt string) string {
				if sec == "queue" && name != "dir" {
					return base(k.name, q) + spelt + " = " + s[0] + "\n"
				}
				if inSection {
					return base(k.name, q) + "[" + sec + "]\n" + spelt + " = " + s[0] + "\n"
				}
				return spelt + " = " + s[0] + "\n" + base(k.name, q)
			}
			file := write(t, filepath.Join(dir, k.name, "hook.conf"), put(name))
			c, err := Load(file)
			if err != nil {
				t.Fatalf("from the file: %v", err)
			}
			if eff := c.Effective(); !strings.Contains(eff, s[2]+"  # file\n") && !strings.Contains(eff, s[2]+"\n") {
				t.Errorf("validate lacks %q:\n%s", s[2], eff)
			}
			if _, err := Load(write(t, file, put(strings.ToUpper(name)))); err == nil || !strings.Contains(err.Error(), "keys are lower case (did you mean ") {
				t.Errorf("%s in upper case: %v", name, err)
			}
			// From its variable, over a file without it.
			t.Setenv(EnvName(k.name), s[1])
			c, err = Load(write(t, file, base(k.name, q)))
			if err != nil {
				t.Fatalf("from %s: %v", EnvName(k.name), err)
			}
			if eff := c.Effective(); !strings.Contains(eff, s[2]+"  # env "+EnvName(k.name)+"\n") {
				t.Errorf("validate lacks %q from %s:\n%s", s[2], EnvName(k.name), eff)
			}
		})
	}
}

// base is a valid config for testing key: a target (a store one for the
// keys only store targets take) and a queue directory.
func base(key, q string) string {
	var b strings.Builder
	switch key {
	case "cache", "store":
	case "secret_key_file":
		b.WriteString("store = \"file:///srv/s\"\n")
	default:
		b.WriteString("cache = \"c\"\n")
	}
	if key != "allow" {
		b.WriteString("allow = [\"*\"]\n")
	}
	if key != "queue.dir" {
		b.WriteString("[queue]\ndir = \"" + q + "\"\n")
	}
	return b.String()
}

// exampleKeys lists the keys hook.conf.example sets or shows commented
// out, with their sections, sorted.
func exampleKeys(t *testing.T) []string {
	f, err := os.Open("../../hook.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line := regexp.MustCompile(`^(?:# )?([a-z_]+) = `)
	header := regexp.MustCompile(`^(?:# )?\[\[?([a-z_]+)\]\]?`)
	var out []string
	sec := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := header.FindStringSubmatch(sc.Text()); m != nil {
			if sections[m[1]] {
				sec = m[1] + "."
			} else if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
			continue
		}
		if m := line.FindStringSubmatch(sc.Text()); m != nil && !(sec == "" && slices.Contains(out, "target") && (m[1] == "cache" || m[1] == "allow") && slices.Contains(out, m[1])) {
			if k := sec + m[1]; !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// A key or table set twice is refused by the parser with no position:
// the message names its line, which says which [[target]] it is in.
func TestSetTwiceNamesTheLine(t *testing.T) {
	isolate(t)
	for conf, want := range map[string]string{
		minimal + "[[target]]\ncache = \"a\"\ndeny = [\"x\"]\n[[target]]\ncache = \"b\"\ndeny = [\"x\"]\ndeny = [\"y\"]\n": ":11: key deny is already defined",
		"cache = \"c\"\nallow = [\"*\"]\n[queue]\ndir = \"/q\"\n[cachix]\n[queue]\nbatch = 1\n":                            ":6: table queue already exists",
		"cache = \"c\"\nallow = [\"*\"]\ndeny = [\"x\"]\n[deny]\n":                                                         ":4: key deny should be a table, not a value",
		"[[target]]\ncache = \"a\"\n[target.x]\n[[target]]\ncache = \"b\"\n[target.x]\n[target.x]\n":                       ":7: table x already exists",
	} {
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
		_, err := Load(file)
		if err == nil || !strings.Contains(err.Error(), file+want) {
			t.Errorf("want %q, got %v", file+want, err)
		}
	}
}
