package nodeid

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := []string{"a", "pub-1", "sub_2.x", strings.Repeat("z", MaxLen), "A9"}
	for _, id := range good {
		if err := Validate(id); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", id, err)
		}
	}
	bad := []string{"", strings.Repeat("z", MaxLen+1), "a b", "a/b", "é", "a#1", "a\x00", ".", "..", "../snapshot", ".hidden", "-rf", "a\nb"}
	for _, id := range bad {
		err := Validate(id)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%q) = %v, want ErrInvalid", id, err)
		}
	}
}

func TestResolvePrecedence(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IDFile), []byte("from-file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		flag, env string
		want      string
		src       Source
	}{
		{"from-flag", "from-env", "from-flag", FromFlag},
		{"", "from-env", "from-env", FromEnv},
		{"", "", "from-file", FromFile},
	}
	for _, c := range cases {
		id, src, err := resolve(c.flag, c.env, dir)
		if err != nil || id != c.want || src != c.src {
			t.Errorf("resolve(%q, %q) = %q, %v, %v; want %q, %v", c.flag, c.env, id, src, err, c.want, c.src)
		}
	}
}

func TestResolveEnv(t *testing.T) {
	t.Setenv(EnvVar, "env-node")
	id, src, err := Resolve("", t.TempDir())
	if err != nil || id != "env-node" || src != FromEnv {
		t.Fatalf("Resolve = %q, %v, %v", id, src, err)
	}
	t.Setenv(EnvVar, "bad id")
	if _, _, err := Resolve("", t.TempDir()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Resolve with bad env = %v, want ErrInvalid", err)
	}
}

func TestResolveGeneratesAndKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub", "dir")
	id, src, err := resolve("", "", dir)
	if err != nil || src != FromGenerated {
		t.Fatalf("first resolve = %q, %v, %v", id, src, err)
	}
	if err := Validate(id); err != nil {
		t.Fatalf("generated id invalid: %v", err)
	}
	id2, src2, err := resolve("", "", dir)
	if err != nil || id2 != id || src2 != FromFile {
		t.Fatalf("second resolve = %q, %v, %v; want %q from file", id2, src2, err, id)
	}
}

func TestResolveRejectsInvalid(t *testing.T) {
	if _, _, err := resolve("bad id!", "", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad flag: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, IDFile), []byte("no spaces allowed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := resolve("", "", dir); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad file: %v", err)
	}
}

func TestEpoch(t *testing.T) {
	dir := t.TempDir()
	e, err := LoadEpoch(dir)
	if err != nil || e != 0 {
		t.Fatalf("empty dir: %d, %v", e, err)
	}
	for _, c := range []struct{ local, peers, want uint64 }{{0, 0, 1}, {4, 2, 5}, {2, 9, 10}} {
		if got, err := Next(c.local, c.peers); got != c.want || err != nil {
			t.Errorf("Next(%d, %d) = %d, %v, want %d", c.local, c.peers, got, err, c.want)
		}
	}
	// Never wraps: 2^64-1 from a hostile peer is refused, not turned into 0.
	for _, h := range []uint64{MaxEpoch, MaxEpoch + 1, math.MaxUint64} {
		if got, err := Next(1, h); !errors.Is(err, ErrEpoch) || got != 0 {
			t.Errorf("Next(1, %d) = %d, %v, want ErrEpoch", h, got, err)
		}
	}
	if got, err := Next(MaxEpoch-1, 0); got != MaxEpoch || err != nil {
		t.Errorf("Next(MaxEpoch-1) = %d, %v", got, err)
	}
	if err := SaveEpoch(dir, math.MaxUint64); !errors.Is(err, ErrEpoch) {
		t.Errorf("SaveEpoch(2^64-1) = %v, want ErrEpoch", err)
	}
	if err := os.WriteFile(filepath.Join(dir, EpochFile), []byte("18446744073709551615\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEpoch(dir); !errors.Is(err, ErrCorrupt) {
		t.Errorf("epoch file with 2^64-1: %v, want ErrCorrupt", err)
	}
	if err := SaveEpoch(dir, 7); err != nil {
		t.Fatal(err)
	}
	if e, err := LoadEpoch(dir); err != nil || e != 7 {
		t.Fatalf("after save: %d, %v", e, err)
	}
	if err := os.WriteFile(filepath.Join(dir, EpochFile), []byte("seven"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadEpoch(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt epoch: %v, want ErrCorrupt", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}
