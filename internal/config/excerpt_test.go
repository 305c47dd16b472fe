package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// A secret written inline (a token where its file's path belongs, a key
// named like a secret) is hidden in the lines a syntax error shows, as a
// URI's password is: the message is in every build's log. The path of a
// secret's file is not a secret, and stays.
func TestSyntaxErrorHidesInlineSecrets(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJqdGkiOiJodW50ZXIyIn0.hunter2sig"
	nixKey := "cache-1:" + strings.Repeat("hunter2A", 11)[:86] + "=="
	for _, conf := range []string{
		"cache = \"x\" token=" + jwt + "\nallow = [\"*\"]\n",
		"cache = \"x\"\ntoken = " + jwt + "\nallow = [\"*\"]\n",
		"cache = \"x\"\n[cachix]\nauth_token = hunter2\nallow = [\"*\"]\n",
		"cache = \"x\"\n[cachix]\nauth_token = \"hunter2\" x\nallow = [\"*\"]\n",
		"cache = \"x\"\nPassword='hunter2' x\nallow = [\"*\"]\n",
		"cache = \"x\"\n[cachix]\nsigning_key = \"" + nixKey + "\" x\nallow = [\"*\"]\n",
		"cache = \"x\"\n[cachix]\nauth_token_file = \"" + jwt + "\" x\nallow = [\"*\"]\n",
		// The line next to the error.
		"cache = \"x\"\ncachix.token = \"hunter2\"\nallow = [\"*\"\n",
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
		_, err := Load(file)
		if err == nil {
			t.Fatalf("Load took:\n%s", conf)
		}
		if msg := err.Error(); strings.Contains(msg, "hunter2") || strings.Contains(msg, "eyJ") || !strings.Contains(msg, "REDACTED") || !strings.Contains(msg, "allow = [") {
			t.Errorf("the excerpt shows the secret, or no line:\n%s", msg)
		}
	}
	// A secret's file is named, as written.
	isolate(t)
	file := write(t, filepath.Join(t.TempDir(), "hook.conf"), "cache = \"x\"\n[cachix]\nauth_token_file = \"/run/secrets/token\" x\n")
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), `| auth_token_file = "/run/secrets/token" x`) {
		t.Errorf("the excerpt does not show the token file's path: %v", err)
	}
}

// A token or key written where its file's path belongs (auth_token_file =
// "eyJ...", the commonest mix-up) is refused without showing it: the
// message is in every build's log.
func TestSecretFileKeyHidesValue(t *testing.T) {
	for _, conf := range []string{
		minimal + "[cachix]\nauth_token_file = \"hunter2.hunter2\"\n",
		minimal + "[cachix]\nsigning_key_file = \"cache-1:hunter2\"\n",
		"store = \"file:///x\"\nallow = [\"*\"]\nsecret_key_file = \"cache-1:hunter2\"\n",
		"cache = \"c\"\n[[target]]\nstore = \"file:///x\"\nsecret_key_file = \"cache-1:hunter2\"\n",
	} {
		isolate(t)
		file := write(t, filepath.Join(t.TempDir(), "hook.conf"), conf)
		_, err := Load(file)
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "must be an absolute path") {
			t.Errorf("%q: %v", conf, err)
		}
	}
	isolate(t)
	t.Setenv(EnvName("cachix.auth_token_file"), "hunter2")
	t.Setenv(EnvName("cache"), "c")
	if _, err := Load(""); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("from the environment: %v", err)
	}
}
