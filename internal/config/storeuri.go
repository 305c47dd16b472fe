package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/cachix-filter-hook/cachix-filter-hook/internal/storepath"
	"github.com/cachix-filter-hook/cachix-filter-hook/internal/trust"
)

// A store URI goes to `nix copy --to` in argv, which every user can read
// in /proc/PID/cmdline, and shows up in logs, status and errors. So it
// must carry no credentials: they belong where Nix reads them itself (a
// netrc-file named in nix.conf for http(s), an AWS profile for s3).

// secretWords mark a query parameter whose value is a credential.
var secretWords = []string{"password", "passwd", "token", "secret", "auth", "credential"}

// secretParam reports whether a store URI's query parameter carries a
// secret. secret-key does not: it is the path of the key file Nix signs
// with (pusher/signing.go adds it), not the key; that file is checked as
// secret_key_file is (StoreKeyFiles). Nor does secret-keys, its list of
// such paths (Nix 2.29 and later).
func secretParam(name string) bool {
	n := strings.ToLower(name)
	if n == "secret-key" || n == "secret-keys" {
		return false
	}
	for _, w := range secretWords {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// storeCredentials says which part of a store URI carries a credential,
// or "" when none does. A scheme://... URI that does not parse has no
// user:password here (validStore reports it); its query is still read.
func storeCredentials(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if pw, _ := u.User.Password(); pw != "" {
			return "a password (user:password@)"
		}
	}
	// As Nix splits it, on '&' alone: u.Query() drops a parameter it
	// cannot parse (a ';' in it, a bad %-escape), which nix copy still
	// gets in argv.
	var names []string
	for _, kv := range strings.Split(rawQuery(s), "&") {
		if name, _, _ := strings.Cut(kv, "="); secretParam(paramName(name)) {
			names = append(names, paramName(name))
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return fmt.Sprintf("the query parameter %q", names[0])
}

// credentialsFix says where the credentials of a store URI go instead.
func credentialsFix(s string) string {
	u, _ := url.Parse(s)
	host := "HOST"
	if u != nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	if u != nil && u.Scheme == "s3" {
		return "remove it and give the credentials to Nix through an AWS profile of the user the worker runs as (~/.aws/credentials), named with ?profile=NAME"
	}
	return fmt.Sprintf("remove it and give the credentials to Nix in its netrc file (`netrc-file = /etc/nix/netrc` in nix.conf, default /etc/nix/netrc; a line `machine %s login USER password PASSWORD`, mode 0600)", host)
}

// RedactURI hides the credentials in a store URI: the password of
// https://user:secret@host and the value of a query parameter such as
// ?token=... (see secretParam), for messages about a URI that carries them.
// It works on the URI as written, which it otherwise keeps: a URI that
// does not parse (https://u:secret@host/%zz) is shown in the very
// message that refuses it.
func RedactURI(s string) string {
	if head, rest, ok := authority(s); ok {
		auth := rest
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			auth = rest[:i]
		}
		at := strings.LastIndexByte(auth, '@')
		// A password holding '/', '?' or '#' unescaped ends the authority
		// early as a URL parser reads it: then it runs to the last '@'.
		// That may take in a port and path too; shown less, never more.
		if at < 0 && strings.Contains(auth, ":") {
			at = strings.LastIndexByte(rest, '@')
		}
		if at >= 0 {
			if user, pw, ok := strings.Cut(rest[:at], ":"); ok && pw != "" {
				s = head + user + ":REDACTED" + rest[at:]
			}
		}
	}
	head, query, ok := strings.Cut(s, "?")
	if !ok {
		return s
	}
	query, frag, hasFrag := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, kv := range params {
		if name, _, ok := strings.Cut(kv, "="); ok && secretParam(paramName(name)) {
			params[i] = name + "=REDACTED"
		}
	}
	s = head + "?" + strings.Join(params, "&")
	if hasFrag {
		s += "#" + frag
	}
	return s
}

// authority splits s where its authority starts: after a leading "//"
// (a URI without a scheme, whose user:password@ url.Parse reads all the
// same, and validStore takes as an absolute path), else after
// "scheme://". ok is false when it has none.
func authority(s string) (head, rest string, ok bool) {
	if rest, ok := strings.CutPrefix(s, "//"); ok {
		return "//", rest, true
	}
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		return scheme + "://", rest, true
	}
	return "", "", false
}

// paramName is a query parameter's name decoded, or as written when it
// does not decode.
func paramName(raw string) string {
	if n, err := url.QueryUnescape(raw); err == nil {
		return n
	}
	return raw
}

// URISecrets returns the credentials a store URI carries, as written and
// decoded, so that a pusher can remove them from what it passes on. Load
// refuses such a URI; this is for a Target made another way.
func URISecrets(s string) []string {
	var out []string
	add := func(raw, dec string) {
		for _, v := range []string{raw, dec} {
			if v != "" && !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if pw, has := u.User.Password(); has {
			add(rawPassword(s), pw)
		}
	}
	for _, kv := range strings.Split(rawQuery(s), "&") {
		name, raw, _ := strings.Cut(kv, "=")
		if secretParam(paramName(name)) {
			dec, err := url.QueryUnescape(raw)
			if err != nil {
				dec = ""
			}
			add(raw, dec)
		}
	}
	return out
}

// rawQuery is the query of a store URI as written, split as url.Parse
// splits it, but also from one it refuses: validStore takes any absolute
// path, and "/srv/cache%zz?password=..." (a bad %-escape) goes to nix
// copy whole.
func rawQuery(s string) string {
	s, _, _ = strings.Cut(s, "#")
	_, q, _ := strings.Cut(s, "?")
	return q
}

// rawPassword is the password of scheme://user:password@host as written,
// percent-encoding and all.
func rawPassword(s string) string {
	_, rest, ok := authority(s)
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}

// StoreKeyFiles returns the key files a store URI's secret-key= and
// secret-keys= name, which nix copy signs with: as Nix reads them, the
// query cut at '#', split on '&' alone and %-decoded ('+' is a '+'),
// with the name decoded (newer Nix) or not (2.8), and secret-keys'
// value split on ',' once decoded (Nix 2.29 and later). An empty value
// names none.
func StoreKeyFiles(s string) []string {
	var out []string
	for _, f := range storeFiles(s) {
		if !f.private() {
			out = append(out, f.file)
		}
	}
	return out
}

// storeSetsParam reports whether a store URI's query sets param, as Nix
// reads it (see StoreKeyFiles), even to an empty value.
func storeSetsParam(s, param string) bool {
	for _, kv := range strings.Split(rawQuery(s), "&") {
		if name, _, ok := strings.Cut(kv, "="); ok && (name == param || paramName(name) == param) {
			return true
		}
	}
	return false
}

// storeFile is a file a store URI names, with the parameter naming it.
type storeFile struct {
	param, file string
}

// private reports whether f is a private key Nix logs in with, rather
// than a signing key.
func (f storeFile) private() bool { return f.param == "ssh-key" || f.param == "tls-private-key" }

// storeFiles returns the files a store URI's parameters name that Nix
// reads as root: each once, with its parameter, in the order written.
// Besides the signing keys, ssh-key=, the private key an ssh:// or
// ssh-ng:// store logs in with (ssh -i), and tls-private-key=, that of
// an http(s):// store's client certificate (Nix 2.34 and later).
func storeFiles(s string) []storeFile {
	known := func(p string) bool {
		return p == "secret-key" || p == "secret-keys" || p == "ssh-key" || p == "tls-private-key"
	}
	var out []storeFile
	for _, kv := range strings.Split(rawQuery(s), "&") {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		param := name
		if !known(param) {
			param = paramName(name)
		}
		if !known(param) {
			continue
		}
		value, err := url.PathUnescape(raw)
		if err != nil {
			value = raw // Nix refuses it; checked as written all the same
		}
		files := []string{value}
		if param == "secret-keys" {
			files = strings.Split(value, ",")
		}
		for _, file := range files {
			if file != "" && !slices.ContainsFunc(out, func(f storeFile) bool { return f.file == file }) {
				out = append(out, storeFile{param, file})
			}
		}
	}
	return out
}

// FileStoreDirs returns the directory of a file:// store, which nix copy
// writes into as root, or nil for another store: as Nix 2.8 reads it
// (everything before the '?', as written) and as later Nix does (before
// a '?' or '#', %-decoded), each once, so that whichever Nix runs, the
// directory it writes is the one checked.
func FileStoreDirs(store string) []string {
	rest, ok := schemeRest(store, "file")
	if !ok {
		return nil
	}
	raw, _, _ := strings.Cut(rest, "?")
	var out []string
	add := func(d string) {
		if d != "" && !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	dec, _, _ := strings.Cut(raw, "#")
	add(raw)
	for _, d := range writtenAndDecoded(dec)[1:] {
		add(d)
	}
	return out
}

// schemeRest returns what follows scheme's "scheme://" in store, or its
// "scheme:" alone: Nix's URL parser takes scheme:/path as scheme:///path
// (nix copy --to file:/srv/cache writes /srv/cache), so both name the
// same directory or socket.
func schemeRest(store, scheme string) (string, bool) {
	rest, ok := strings.CutPrefix(store, scheme+":")
	if !ok {
		return "", false
	}
	return strings.TrimPrefix(rest, "//"), true
}

// writtenAndDecoded returns s, then s %-decoded when that decodes: Nix
// releases differ in which of the two they read as a path.
func writtenAndDecoded(s string) []string {
	if d, err := url.PathUnescape(s); err == nil {
		return []string{s, d}
	}
	return []string{s}
}

// LocalStoreDirs returns the directories a local Nix store writes in, as
// root when nix copy opens it: the root of a store given as a path
// (/srv/store, which Nix takes as local?root=/srv/store), of local:// or
// local-overlay:// (its path, or root=), and those named by state=, log=
// and upper-layer=; then, apart, the store directory itself, which Nix
// makes root:nixbld 1775 as /nix/store is: real=, else ROOT/nix/store
// under a root (where store= is only the name its paths have), else
// store=. Each as written and %-decoded, once, since Nix 2.18 and
// later Nix read a path differently (2.18 prefers the path to root=,
// later Nix root=). Nil for another store.
func LocalStoreDirs(store string) (dirs, storeDirs []string) {
	base, _, _ := strings.Cut(store, "?")
	var roots []string
	switch {
	case strings.HasPrefix(store, "/"):
		roots = []string{base}
	case strings.HasPrefix(store, "local:"), strings.HasPrefix(store, "local-overlay:"):
		_, p, _ := strings.Cut(base, ":")
		p, _, _ = strings.Cut(strings.TrimPrefix(p, "//"), "#")
		roots = writtenAndDecoded(p)
	case base == "" || base == "auto" || base == "local" || base == "local-overlay":
		// As a lower-store= may name one (see checkLowerStores): at
		// the default root, or at what its query names.
	default:
		return nil, nil
	}
	add := func(out *[]string, d string) {
		// Nix takes absolute paths only.
		if strings.HasPrefix(d, "/") && !slices.Contains(*out, d) {
			*out = append(*out, d)
		}
	}
	for _, r := range roots {
		add(&dirs, r)
	}
	var states, logical []string
	for _, kv := range strings.Split(rawQuery(store), "&") {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		for _, v := range writtenAndDecoded(raw) {
			switch paramName(name) {
			case "root":
				roots = append(roots, v)
				add(&dirs, v)
			case "state":
				states = append(states, v)
				add(&dirs, v)
			case "log", "upper-layer":
				add(&dirs, v)
			case "store":
				logical = append(logical, v)
			case "real":
				add(&storeDirs, v)
			}
		}
	}
	// Nix's store directory is ROOT/nix/store under a root, whatever
	// store= says (there only the name its paths have), else store=.
	rooted := slices.ContainsFunc(roots, func(r string) bool { return strings.HasPrefix(r, "/") })
	if !rooted {
		for _, l := range logical {
			add(&storeDirs, l)
		}
	}
	// What Nix makes in a root unless the query puts it elsewhere,
	// through directories the root's checks do not reach (root/nix
	// another user's): its state and log directories, and its store
	// directory.
	for _, r := range roots {
		if !strings.HasPrefix(r, "/") {
			continue
		}
		r = strings.TrimRight(r, "/")
		if !storeSetsParam(store, "state") {
			states = append(states, r+"/nix/var/nix")
		}
		if !storeSetsParam(store, "log") {
			add(&dirs, r+"/nix/var/log/nix")
		}
		if !storeSetsParam(store, "real") {
			add(&storeDirs, r+"/nix/store")
		}
	}
	// The state directory's own, which hold its database.
	for _, st := range states {
		add(&dirs, st)
		for _, sub := range []string{"db", "gcroots", "profiles", "temproots"} {
			add(&dirs, strings.TrimRight(st, "/")+"/"+sub)
		}
	}
	return dirs, storeDirs
}

// UnixSocketPaths returns the socket of a unix:// store, which nix copy
// connects to as root and hands the paths to, as written and %-decoded
// (see FileStoreDirs), or nil for another store or for unix:// alone,
// the daemon's own socket.
func UnixSocketPaths(store string) []string {
	rest, ok := schemeRest(store, "unix")
	if !ok {
		return nil
	}
	raw, _, _ := strings.Cut(rest, "?")
	var out []string
	dec, _, _ := strings.Cut(raw, "#")
	for _, p := range append([]string{raw}, writtenAndDecoded(dec)[1:]...) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// daemonSocket is the socket Nix connects to for `daemon` and unix://
// alone, as nix copy run with env finds it.
func daemonSocket(env []string) string {
	get := func(k string) string {
		v, _ := LookupEnv(env, k)
		return v
	}
	if p := get("NIX_DAEMON_SOCKET_PATH"); p != "" {
		return p
	}
	dir := "/nix/var/nix"
	if d := get("NIX_STATE_DIR"); d != "" && filepath.IsAbs(d) {
		dir = filepath.Clean(d)
	}
	return dir + "/daemon-socket/socket"
}

// isDaemonSocket reports whether sock is the daemon's socket, daemon
// (daemonSocket), as the kernel resolves it: written with "//" or "/./",
// or reached through links, each owned by root or the running user in
// directories only they can change (trust.CheckParents). Through one
// another user can change, it is whichever socket they point it at when
// nix copy connects.
func isDaemonSocket(sock, daemon string) bool {
	if sock == daemon {
		return true
	}
	if c, ok := cleanPlain(sock); ok {
		if d, ok := cleanPlain(daemon); ok && c == d {
			return true
		}
	}
	dir, err := os.Stat(filepath.Dir(daemon))
	if err != nil || !strings.HasPrefix(sock, "/") {
		return false
	}
	return leadsTo(sock, dir, filepath.Base(daemon), 0)
}

// cleanPlain is p cleaned when cleaning keeps what the kernel resolves
// it to: with no ".." (above a link's target, not the link's directory)
// and not ending in a directory ("/", "/.").
func cleanPlain(p string) (string, bool) {
	parts := strings.Split(p, "/")
	if last := parts[len(parts)-1]; last == "" || last == "." || slices.Contains(parts, "..") {
		return "", false
	}
	return filepath.Clean(p), true
}

// leadsTo reports whether the absolute path p is the entry base in the
// directory dir, through trusted links only (see isDaemonSocket); depth
// counts the links followed.
func leadsTo(p string, dir fs.FileInfo, base string, depth int) bool {
	if depth > maxSocketLinks {
		return false
	}
	i := strings.LastIndex(p, "/")
	parent, name := p[:i], p[i+1:]
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		target, ok := trustedLink(p, parent)
		return ok && leadsTo(target, dir, base, depth+1)
	}
	return name == base && dirLeadsTo(parent, dir, depth)
}

// dirLeadsTo reports whether the absolute path p is the directory dir,
// through trusted links only.
func dirLeadsTo(p string, dir fs.FileInfo, depth int) bool {
	p, ok := resolveDotDot(p)
	if !ok || depth > maxSocketLinks {
		return false
	}
	// "link/" would be followed by Lstat, unchecked.
	if p = strings.TrimRight(p, "/"); p == "" {
		return os.SameFile(rootInfo(), dir)
	}
	i := strings.LastIndex(p, "/")
	fi, err := os.Lstat(p)
	if err != nil {
		return false
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, ok := trustedLink(p, p[:i])
		return ok && dirLeadsTo(target, dir, depth+1)
	}
	// The directory the check walked to, not the one Lstat found:
	// a link on the way may have been swapped between the two.
	_, checked, err := trust.CheckedDir(p, false)
	return err == nil && os.SameFile(checked, dir)
}

// resolveDotDot returns p with each "q/.." replaced by the real path
// above q, as the kernel resolves it (above q's target when q is a
// link), when the way to q and q itself are only root's or the running
// user's to change; "." dropped. trust.CheckParents walks no path that
// ends in "..".
func resolveDotDot(p string) (string, bool) {
	parts := strings.Split(p, "/")
	for i := 0; i < len(parts); i++ {
		switch parts[i] {
		case ".":
			parts = slices.Delete(parts, i, i+1)
			i--
		case "..":
			q := strings.Join(parts[:i], "/")
			if q == "" {
				q = "/"
			}
			// Checked and resolved in one walk: q's links read
			// then are the ones judged.
			real, _, err := trust.CheckedDir(q, true)
			if err != nil {
				return "", false
			}
			up := filepath.Dir(real)
			parts = append(strings.Split(up, "/"), parts[i+1:]...)
			i = len(strings.Split(up, "/")) - 1
		}
	}
	return strings.Join(parts, "/"), true
}

// trustedLink returns where the link p, in the directory parent, leads,
// when root or the running user owns it and only they can change the
// directories on its way: decided on one descriptor of the link
// (trust.ReadLink), not on the Lstat that found it, which a link put in
// its place since may not be.
func trustedLink(p, parent string) (string, bool) {
	target, err := trust.ReadLink(p)
	if err != nil {
		return "", false
	}
	if !strings.HasPrefix(target, "/") {
		// Not cleaned: the kernel resolves it from parent.
		target = parent + "/" + target
	}
	return target, true
}

// rootInfo is /'s, or nil.
func rootInfo() fs.FileInfo {
	fi, _ := os.Stat("/")
	return fi
}

// maxSocketLinks bounds the links isDaemonSocket follows, as the
// kernel's limit.
const maxSocketLinks = 40

// relativeFileStore reports whether a file:// store names its directory
// by a relative path (file://cache, file://host/dir): older Nix writes it
// from the working directory, the worker's /, not the one validate and
// doctor would check; newer Nix refuses it.
func relativeFileStore(store string) bool {
	return slices.ContainsFunc(FileStoreDirs(store), func(d string) bool { return !strings.HasPrefix(d, "/") })
}

// relativeUnixSocket names the first socket a unix:// store, or one of a
// local-overlay:// store's lower-store=, names by a relative path, as
// "socket PATH", followed by "of its lower-store=URI" for a lower
// store's; "" when none does. nix copy would connect to it from the
// worker's working directory (/), not the one validate ran in. fix is
// that store from / (unix:///PATH).
func relativeUnixSocket(store string, depth int) (what, fix string) {
	for _, sock := range UnixSocketPaths(store) {
		if !strings.HasPrefix(sock, "/") {
			return "socket " + sock, "unix://" + fromRoot(sock)
		}
	}
	if depth >= maxLowerStores {
		return "", ""
	}
	for _, lower := range LowerStores(store) {
		if r, fix := relativeUnixSocket(lower, depth+1); r != "" {
			return r + " of its lower-store=" + RedactURI(lower), fix
		}
	}
	return "", ""
}

// relativeLocalStore names the first directory a local store (see
// LocalStoreDirs), or one of its lower-store=, names by a relative path,
// as "root (the path after local://)" or "state=", followed by "of its
// lower-store=URI" for a lower store's; "" when none does. Nix would take
// it from the worker's working directory (/), not the one validate ran
// in, and LocalStoreDirs leaves it out: it went to nix copy unchecked.
// fix is that value as the user wrote it, from / ("state=/var",
// "local:///rel, three slashes"), for the refusal to show.
func relativeLocalStore(store string, depth int) (what, fix string) {
	base, _, _ := strings.Cut(store, "?")
	for _, scheme := range []string{"local", "local-overlay"} {
		rest, ok := schemeRest(base, scheme)
		if !ok {
			continue
		}
		rest, _, _ = strings.Cut(rest, "#")
		prefix := scheme + ":"
		if strings.HasPrefix(base, scheme+"://") {
			prefix += "//"
		}
		// As Nix reads it, %-decoded (LocalStoreDirs checks both).
		ws := writtenAndDecoded(rest)
		if rest != "" && !strings.HasPrefix(ws[len(ws)-1], "/") {
			fix = prefix + fromRoot(rest)
			if strings.HasSuffix(prefix, "//") {
				fix += ", three slashes"
			}
			return "root (the path after " + prefix + ")", fix
		}
	}
	for _, kv := range strings.Split(rawQuery(store), "&") {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || raw == "" {
			continue
		}
		ws := writtenAndDecoded(raw)
		switch param := paramName(name); param {
		case "root", "state", "log", "real", "store", "upper-layer":
			if !strings.HasPrefix(ws[len(ws)-1], "/") {
				// Nix reads these as path settings, through
				// canonPath, which drops "link/.." lexically:
				// "/link/../var" would be /var to it.
				return param + "=", name + "=" + filepath.Join("/", raw)
			}
		case "lower-store":
			lower := ws[len(ws)-1]
			if depth < maxLowerStores {
				if r, fix := relativeLocalStore(lower, depth+1); r != "" {
					return r + " of its lower-store=" + RedactURI(lower), fix
				}
			}
		}
	}
	return "", ""
}

// fromRoot is the relative path p as the worker, working in /, resolves
// it: "/" and p, cleaned only when cleaning keeps its meaning (see
// cleanPlain): "link/../x" is above link's target, not /x.
func fromRoot(p string) string {
	if c, ok := cleanPlain("/" + p); ok {
		return c
	}
	return "/" + p
}

// CheckStoreDirs applies the trust rule to the directory of a file://
// store (FileStoreDirs) and to the subdirectories Nix writes in: nix copy
// writes there as root, through temporary files it opens by name,
// following links, so another user who could write there could make root
// create or overwrite a file of their choosing. So too for a local store
// (LocalStoreDirs), a whole Nix store root makes files, links and its
// database in; its store directory may be what Nix makes it, as
// /nix/store: root's, sticky and writable by the build users' group.
// Nil for another store, and for a directory not made yet below one only
// root can write in (Nix makes it). The daemon's socket is where this
// process's environment puts it: the worker's, which nix copy inherits.
func CheckStoreDirs(store string) error {
	return CheckStoreDirsIn(store, os.Environ())
}

// CheckStoreDirsIn is CheckStoreDirs for nix copy run with env, which
// says where the daemon's socket is (NIX_DAEMON_SOCKET_PATH,
// NIX_STATE_DIR): validate and doctor pass the worker's, not their own.
func CheckStoreDirsIn(store string, env []string) error {
	return checkStoreDirs(store, daemonSocket(env), 0)
}

// StoreSocketError is CheckStoreDirs' refusal of a unix:// socket, a
// target's or a lower-store='s: mended by naming or binding a socket,
// not by making a directory.
type StoreSocketError struct{ Err error }

func (e *StoreSocketError) Error() string { return e.Err.Error() }
func (e *StoreSocketError) Unwrap() error { return e.Err }

// LowerStoreError is CheckStoreDirs' refusal of a lower-store= it cannot
// check (none it knows, or nested too deep), which says what to set it
// to.
type LowerStoreError struct{ Err error }

func (e *LowerStoreError) Error() string { return e.Err.Error() }
func (e *LowerStoreError) Unwrap() error { return e.Err }

// maxLowerStores bounds how deeply local-overlay:// stores may name one
// another as lower-store=.
const maxLowerStores = 4

func checkStoreDirs(store, daemon string, depth int) error {
	for _, dir := range FileStoreDirs(store) {
		// Realisations are in build-trace-v2/ from Nix 2.35 on.
		if err := trust.CheckWriteDir(dir, "nar", "log", "realisations", "build-trace-v2", "debuginfo"); err != nil {
			return fmt.Errorf("the file:// store's directory: %w", err)
		}
	}
	for _, sock := range UnixSocketPaths(store) {
		if isDaemonSocket(sock, daemon) {
			// The daemon's own, as `daemon` names it: its directory
			// is nix-users' to write on Debian, by design.
			continue
		}
		// Whoever could bind it, or owns it, is the daemon nix copy
		// hands the paths to.
		if !strings.HasPrefix(sock, "/") {
			return &StoreSocketError{fmt.Errorf("the unix:// store's socket %s is not an absolute path: nix copy would look it up from the worker's working directory (/); name it by its absolute path (unix://%s)", sock, fromRoot(sock))}
		}
		// Not cleaned, as the kernel resolves it: "link/../socket" is
		// above link's target.
		dir, name := sock[:strings.LastIndex(sock, "/")], sock[strings.LastIndex(sock, "/")+1:]
		if name == "" || name == "." || name == ".." {
			// A directory (unix:/// is /): nix copy could connect to
			// no socket there.
			return &StoreSocketError{fmt.Errorf("the unix:// store names no socket: %s is a directory; write unix:// alone for the Nix daemon's socket, or the socket's path after it (unix:///run/NAME/socket)", sock)}
		}
		if dir == "" {
			dir = "/"
		}
		if err := trust.CheckWriteDir(dir); err != nil {
			var te *trust.Error
			if errors.As(err, &te) && !te.Parent && !te.Link {
				// Not made anew as a cache's: it may be /tmp.
				te.Fix = "have the daemon bind its socket in a directory only root can write, such as /run/NAME, and name that socket"
			}
			return &StoreSocketError{fmt.Errorf("the unix:// store's socket's directory: %w", err)}
		}
		if _, err := trust.Check(sock, trust.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return &StoreSocketError{fmt.Errorf("the unix:// store's socket: %w", err)}
		}
	}
	dirs, storeDirs := LocalStoreDirs(store)
	if len(dirs)+len(storeDirs) > 0 || strings.HasPrefix(store, "local") {
		// Load refuses it; a Target may be made another way.
		if r, fix := relativeLocalStore(store, depth); r != "" {
			return fmt.Errorf("the local store's %s must be an absolute path: nix copy would take it from the worker's working directory (/); write it from / (%s)", r, fix)
		}
	}
	// One in another (ROOT/nix/var/nix, STATE/db) is the store's own,
	// not a directory shared by design, such as /tmp.
	all := append(slices.Clone(dirs), storeDirs...)
	checkDir := func(dir string) error {
		for _, d := range all {
			if d = strings.TrimRight(d, "/"); d != "" && d != strings.TrimRight(dir, "/") && strings.HasPrefix(dir, d+"/") {
				return trust.CheckWriteSubdir(dir)
			}
		}
		return trust.CheckWriteDir(dir)
	}
	for _, dir := range dirs {
		if err := checkDir(dir); err != nil {
			return fmt.Errorf("the local store's directory: %w", err)
		}
	}
	for _, dir := range storeDirs {
		err := checkDir(dir)
		// Nix makes its store directory root's, sticky and writable by
		// the build users' group (1775), as /nix/store: nobody else may
		// add to it. The members of another group could.
		var te *trust.Error
		if errors.As(err, &te) && !te.Parent && !te.Link && te.Uid == 0 && te.Mode&fs.ModeSticky != 0 && te.Mode.Perm()&0o002 == 0 {
			err = nil
			// Made anew, as trust.CheckWriteDir says: a chgrp or chmod
			// would keep what the group's members put in it.
			keeps := "(a chgrp or chmod would keep what the group's members could put in it, such as links root would write through)"
			// Still a refusal, which says how to mend it.
			if gid, ok := buildGroup(); !ok {
				te.Problem = fmt.Sprintf("is writable by its group (gid %d), and there is no build users' group here (%s is not root's, sticky and group-writable)", te.Gid, storepath.StoreDir())
				te.Fix = fmt.Sprintf("mv %s %s.untrusted && mkdir -m 0755 %s %s", te.Bad, te.Bad, te.Bad, keeps)
				err = te
			} else if te.Gid != gid {
				te.Problem = fmt.Sprintf("is writable by its group (gid %d), not Nix's build users' group (gid %d, the group of %s)", te.Gid, gid, storepath.StoreDir())
				te.Fix = fmt.Sprintf("mv %s %s.untrusted && mkdir %s && chgrp %d %s && chmod 1775 %s %s", te.Bad, te.Bad, te.Bad, gid, te.Bad, te.Bad, keeps)
				err = te
			}
		}
		if err != nil {
			return fmt.Errorf("the local store's store directory: %w", err)
		}
	}
	return checkLowerStores(store, daemon, depth)
}

// checkLowerStores applies CheckStoreDirs to the lower-store= of a
// local-overlay:// store: a store URI (%-decoded once more) that Nix
// opens as root, and writes as any local store when it is one. The
// daemon writes its own, but one at another socket is asked which paths
// are valid, so its socket is checked as a unix:// target's; another
// store cannot be checked, and Nix wants one with a store directory on
// this machine all the same.
func checkLowerStores(store, daemon string, depth int) error {
	for _, lower := range LowerStores(store) {
		lbase, _, _ := strings.Cut(lower, "?")
		switch {
		case lbase == "daemon":
			// The daemon writes its own store.
		case strings.HasPrefix(lower, "unix:"):
			// Nix copies none of the paths the daemon behind it
			// claims are valid: its socket is checked as a unix://
			// target's.
			if err := checkStoreDirs(lower, daemon, depth+1); err != nil {
				return fmt.Errorf("the local overlay store's lower-store=%s: %w", RedactURI(lower), err)
			}
		case lbase == "" || lbase == "auto" || lbase == "local" || lbase == "local-overlay" ||
			strings.HasPrefix(lower, "/") || strings.HasPrefix(lower, "local:") || strings.HasPrefix(lower, "local-overlay:"):
			if depth >= maxLowerStores {
				// Not a directory to mend: say what is.
				return &LowerStoreError{fmt.Errorf("the local overlay store's lower-store=: lower stores nest deeper than %d, which is as deep as they are checked; name fewer local-overlay:// stores one inside another", maxLowerStores)}
			}
			if err := checkStoreDirs(lower, daemon, depth+1); err != nil {
				return fmt.Errorf("the local overlay store's lower-store=%s: %w", RedactURI(lower), err)
			}
		default:
			return &LowerStoreError{fmt.Errorf("the local overlay store's lower-store=%s is not a local store (an absolute path, local://, local-overlay://), a unix:// socket, auto or the daemon, whose directories or socket could be checked; set lower-store= to one of those", RedactURI(lower))}
		}
	}
	return nil
}

// LowerStores returns the lower-store= URIs of a local-overlay:// store,
// %-decoded as every Nix with local-overlay:// reads them (one that does
// not decode is checked as written, see checkLowerStores); nil for
// another store.
func LowerStores(store string) []string {
	base, _, _ := strings.Cut(store, "?")
	if !strings.HasPrefix(store, "local-overlay:") && base != "local-overlay" {
		return nil
	}
	var out []string
	for _, kv := range strings.Split(rawQuery(store), "&") {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || paramName(name) != "lower-store" {
			continue
		}
		ws := writtenAndDecoded(raw)
		out = append(out, ws[len(ws)-1])
	}
	return out
}

// buildGroup returns Nix's build users' group: the group of the Nix
// store, which Nix as root keeps root's, sticky and writable by that
// group; ok is false when the store is not so (no build users).
func buildGroup() (gid uint32, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(storepath.StoreDir(), &st); err != nil || st.Uid != 0 || st.Mode&syscall.S_ISVTX == 0 || st.Mode&0o020 == 0 {
		return 0, false
	}
	return st.Gid, true
}
