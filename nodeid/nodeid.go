package nodeid

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MaxLen is the longest valid node id (codec.MaxIDLen uses the same bound).
const MaxLen = 64

// EnvVar is the environment variable Resolve consults after the flag.
const EnvVar = "NODE_ID"

// File names inside the data dir.
const (
	IDFile    = "node-id"
	EpochFile = "epoch"
)

var (
	// ErrInvalid is wrapped by every validation error.
	ErrInvalid = errors.New("nodeid: invalid node id")
	// ErrCorrupt means a file in the data dir could not be parsed.
	ErrCorrupt = errors.New("nodeid: corrupt file")
	// ErrEpoch means an epoch is above MaxEpoch: it came from a corrupt
	// file or a hostile peer, and one more incarnation would wrap to 0.
	ErrEpoch = errors.New("nodeid: epoch out of range")
)

// MaxEpoch is the highest valid epoch. Epochs grow by one per incarnation,
// so no real node gets near it; anything above is refused wherever an epoch
// enters (metadata, messages, snapshots, the epoch file), and Next refuses
// to go past it instead of wrapping to 0.
const MaxEpoch uint64 = 1<<62 - 1

// ValidateEpoch reports whether e is at most MaxEpoch.
func ValidateEpoch(e uint64) error {
	if e > MaxEpoch {
		return fmt.Errorf("%w: %d > %d", ErrEpoch, e, MaxEpoch)
	}
	return nil
}

// Source tells where Resolve found the id.
type Source string

// Sources of a node id, in order of precedence.
const (
	FromFlag      Source = "flag"
	FromEnv       Source = "env"
	FromFile      Source = "file"
	FromGenerated Source = "generated"
)

// Validate reports whether id is a valid node id: 1..MaxLen characters, each
// a letter, digit, '.', '_' or '-', not starting with '.' or '-'. It is the
// one check for every node id that enters a pod (flags, environment, files,
// gossip metadata, messages, snapshots): a valid id is safe as a file name
// ("replicas/<id>.snap" never leaves its directory nor hides as a dot file)
// and as a command-line argument, and never contains the '#' that separates
// it from the boot id in a memberlist name.
func Validate(id string) error {
	if n := len(id); n == 0 || n > MaxLen {
		if n > MaxLen {
			id = id[:MaxLen] + "..." // a hostile id does not flood the log
		}
		return fmt.Errorf("%w %q: length %d, must be 1..%d", ErrInvalid, id, n, MaxLen)
	}
	if id[0] == '.' || id[0] == '-' {
		return fmt.Errorf("%w %q: must not start with %q", ErrInvalid, id, id[0])
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: character %q at %d, allowed are [A-Za-z0-9._-]", ErrInvalid, id, c, i)
		}
	}
	return nil
}

// Resolve returns the node id from flag, else $NODE_ID, else dataDir/node-id,
// else a generated id that it saves to dataDir/node-id (creating dataDir).
// An explicit id that is invalid is an error, never silently replaced. With
// an empty dataDir the file steps are skipped.
func Resolve(flag, dataDir string) (string, Source, error) {
	return resolve(flag, os.Getenv(EnvVar), dataDir)
}

func resolve(flag, env, dataDir string) (string, Source, error) {
	if flag != "" {
		return flag, FromFlag, Validate(flag)
	}
	if env != "" {
		if err := Validate(env); err != nil {
			return "", FromEnv, fmt.Errorf("%s: %w", EnvVar, err)
		}
		return env, FromEnv, nil
	}
	if dataDir == "" {
		id, err := Generate()
		return id, FromGenerated, err
	}
	path := filepath.Join(dataDir, IDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if err := Validate(id); err != nil {
			return "", FromFile, fmt.Errorf("%s: %w", path, err)
		}
		return id, FromFile, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", FromFile, fmt.Errorf("nodeid: read %s: %w", path, err)
	}
	id, err := Generate()
	if err != nil {
		return "", FromGenerated, err
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", FromGenerated, fmt.Errorf("nodeid: %w", err)
	}
	if err := WriteFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", FromGenerated, err
	}
	return id, FromGenerated, nil
}

// Generate returns a new random id of the form "node-" + 12 hex digits.
func Generate() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("nodeid: generate: %w", err)
	}
	return "node-" + hex.EncodeToString(b[:]), nil
}

// LoadEpoch returns the epoch saved in dataDir, or 0 if there is none.
// An unreadable or unparsable file is an error wrapping ErrCorrupt.
func LoadEpoch(dataDir string) (uint64, error) {
	if dataDir == "" {
		return 0, nil
	}
	path := filepath.Join(dataDir, EpochFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("nodeid: read %s: %w", path, err)
	}
	e, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err == nil {
		err = ValidateEpoch(e)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	}
	return e, nil
}

// SaveEpoch atomically writes epoch to dataDir (creating it). An epoch
// above MaxEpoch is refused (ErrEpoch).
func SaveEpoch(dataDir string, epoch uint64) error {
	if err := ValidateEpoch(epoch); err != nil {
		return err
	}
	if dataDir == "" {
		return nil
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return fmt.Errorf("nodeid: %w", err)
	}
	return WriteFileAtomic(filepath.Join(dataDir, EpochFile), []byte(strconv.FormatUint(epoch, 10)+"\n"))
}

// Next returns the epoch for a new incarnation: one more than the highest
// epoch known locally or by any peer. It never wraps: when that would
// exceed MaxEpoch it returns an error wrapping ErrEpoch (and 0).
func Next(local, peers uint64) (uint64, error) {
	h := max(local, peers)
	if h >= MaxEpoch {
		return 0, fmt.Errorf("%w: no epoch after %d", ErrEpoch, h)
	}
	return h + 1, nil
}

// WriteFileAtomic writes data to path so that a crash leaves either the old
// or the new content: it writes a temporary file in the same directory,
// fsyncs it, renames it over path and fsyncs the directory.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("nodeid: write %s: %w", path, err)
	}
	tmp := f.Name()
	fail := func(err error) error {
		_ = f.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("nodeid: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("nodeid: write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("nodeid: write %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("nodeid: sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("nodeid: sync dir %s: %w", dir, err)
	}
	return nil
}
