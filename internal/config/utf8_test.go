package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// A target's name from the environment may hold bytes that are not
// UTF-8: the metrics' label values (UTF-8) replaced them, so two names
// could become one series and node exporter dropped the file. Such a
// name is refused, naming the variable. (A store may name a directory
// whose name is not UTF-8: see cli's TestStatusEscapesWhatItRead.)
func TestEnvNameNotUTF8Refused(t *testing.T) {
	for _, val := range []string{"w\xff", "\xe6\x97"} {
		isolate(t)
		t.Setenv(EnvName("name"), val)
		t.Setenv(EnvName("cache"), "c")
		t.Setenv(EnvName("allow"), "*")
		t.Setenv(EnvName("queue.dir"), "/q")
		_, err := Load("")
		if err == nil || !strings.HasPrefix(err.Error(), EnvName("name")+": ") || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s = %q: Load = %v, want an error naming the variable and UTF-8", EnvName("name"), val, err)
		}
	}
	// The file's parser refuses such bytes itself.
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "name = \"w\xff\"\n"+minimal)
	if _, err := Load(file); err == nil {
		t.Errorf("a name not UTF-8 in the file loaded")
	}
}
