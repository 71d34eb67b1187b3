package pod

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Two valid keys (16 and 32 bytes) and a near miss: valid base64 of 31
// bytes, the kind of typo whose text must not leak into a log either.
const (
	keyA    = "MDEyMzQ1Njc4OWFiY2RlZg=="
	keyB    = "c3RlYWRmYXN0LXRlc3Qta2V5LW9ubHktMzJieXRlcyE="
	keyNear = "c3RlYWRmYXN0LXRlc3Qta2V5LW9ubHktMzJieXRlcw=="
)

func writeKeyFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterKeyFile: --cluster-key-file / CLUSTER_KEY_FILE reads the key
// once at start from a regular file of one line that grants nothing to
// other users (a trailing newline, a rotation list and a symbolic link as
// Kubernetes mounts Secrets are fine); everything else is a one-line usage
// error naming the file or the flag, never quoting the key or the file's
// content; a key given both ways is refused, and a flag wins over both
// variables.
func TestClusterKeyFile(t *testing.T) {
	dir := t.TempDir()
	good := writeKeyFile(t, dir, "key", keyB+"\n", 0o400)
	rot := writeKeyFile(t, dir, "rot", keyB+","+keyA+"\n", 0o440)
	// Kubernetes: <mount>/cluster-key -> ..data/cluster-key -> ..2026_x/cluster-key.
	if err := os.MkdirAll(filepath.Join(dir, "..2026_x"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeKeyFile(t, filepath.Join(dir, "..2026_x"), "cluster-key", keyB, 0o440)
	if err := os.Symlink("..2026_x", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cluster-key")
	if err := os.Symlink("..data/cluster-key", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		extra int
		file  string
	}{
		{"flag", []string{"--cluster-key-file", good}, nil, 0, good},
		{"variable", nil, map[string]string{"CLUSTER_KEY_FILE": good}, 0, good},
		{"rotation list, mode 0440", []string{"--cluster-key-file", rot}, nil, 1, rot},
		{"Kubernetes Secret volume links", nil, map[string]string{"CLUSTER_KEY_FILE": link}, 0, link},
		{"the file flag wins over CLUSTER_KEY", []string{"--cluster-key-file", good}, map[string]string{"CLUSTER_KEY": keyA}, 0, good},
		{"the key flag wins over CLUSTER_KEY_FILE", []string{"--cluster-key", keyB}, map[string]string{"CLUSTER_KEY_FILE": filepath.Join(dir, "missing")}, 0, ""},
	} {
		c, err := ParseFlags(Subscriber, tc.args, env(tc.env), nil)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		want, _ := ParseFlags(Subscriber, []string{"--cluster-key", keyB}, env(nil), nil)
		if !bytes.Equal(c.ClusterKey, want.ClusterKey) || len(c.ExtraKeys) != tc.extra || c.ClusterKeyFile != tc.file {
			t.Errorf("%s: key %x extra %d file %q; want %x, %d, %q", tc.name, c.ClusterKey, len(c.ExtraKeys), c.ClusterKeyFile, want.ClusterKey, tc.extra, tc.file)
		}
	}

	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o400); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		secrets []string // must not appear in the message
	}{
		{"missing", []string{"--cluster-key-file", filepath.Join(dir, "missing")}, nil, "no such file", nil},
		{"directory", nil, map[string]string{"CLUSTER_KEY_FILE": dir}, "not a regular file", nil},
		{"fifo (would block)", []string{"--cluster-key-file", fifo}, nil, "not a regular file", nil},
		{"readable by others", []string{"--cluster-key-file", writeKeyFile(t, dir, "k644", keyB, 0o644)}, nil, "mode 0644", []string{keyB}},
		{"writable by the group", []string{"--cluster-key-file", writeKeyFile(t, dir, "k460", keyB, 0o460)}, nil, "mode 0460", []string{keyB}},
		{"empty", []string{"--cluster-key-file", writeKeyFile(t, dir, "empty", "", 0o400)}, nil, "is empty", nil},
		{"blank", []string{"--cluster-key-file", writeKeyFile(t, dir, "blank", " \n\n", 0o400)}, nil, "is empty", nil},
		{"two lines", []string{"--cluster-key-file", writeKeyFile(t, dir, "lines", keyB+"\n"+keyA+"\n", 0o400)}, nil, "more than one line", []string{keyB, keyA}},
		{"too large", []string{"--cluster-key-file", writeKeyFile(t, dir, "large", strings.Repeat("A", 5000), 0o400)}, nil, "5000 bytes", []string{"AAAA"}},
		{"not a key", []string{"--cluster-key-file", writeKeyFile(t, dir, "near", keyNear, 0o400)}, nil, "key 1", []string{keyNear}},
		{"empty key in a list", []string{"--cluster-key-file", writeKeyFile(t, dir, "list", keyB+",,", 0o400)}, nil, "key 2 is empty", []string{keyB}},
		{"both variables", nil, map[string]string{"CLUSTER_KEY": keyA, "CLUSTER_KEY_FILE": good}, "CLUSTER_KEY and CLUSTER_KEY_FILE both set", []string{keyA, keyB}},
		{"both flags", []string{"--cluster-key", keyA, "--cluster-key-file", good}, nil, "both given", []string{keyA, keyB}},
		{"bad key flag", []string{"--cluster-key", keyNear}, nil, "--cluster-key: key 1", []string{keyNear}},
		{"bad key variable", nil, map[string]string{"CLUSTER_KEY": keyNear}, "CLUSTER_KEY: key 1", []string{keyNear}},
		{"bad second key", nil, map[string]string{"CLUSTER_KEY": keyA + "," + keyNear}, "key 2", []string{keyA, keyNear}},
	} {
		_, err := ParseFlags(Publisher, tc.args, env(tc.env), nil)
		if !errors.Is(err, ErrUsage) {
			t.Errorf("%s: err %v, want ErrUsage", tc.name, err)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: message %q should be one line containing %q", tc.name, msg, tc.want)
		}
		for _, s := range tc.secrets {
			if strings.Contains(msg, s) {
				t.Errorf("%s: message %q quotes the key material", tc.name, msg)
			}
		}
	}
}
