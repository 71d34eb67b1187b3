package mediadriver

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/steadfast-pods/steadfast/transport/cnc"
)

// deadDriverDir lays out in dir what a driver killed with SIGKILL leaves:
// a cnc.dat whose heartbeat stopped at hb (unix ms; -1: a driver that shut
// down but whose files stayed), log buffers under publications/ and images/,
// and a file of the user's that no driver owns.
func deadDriverDir(t *testing.T, dir string, hb int64) {
	t.Helper()
	for _, sub := range []string{"publications", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, sub, "7.logbuffer"), make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "keep.txt"), []byte("not the driver's"), 0o644); err != nil {
		t.Fatal(err)
	}
	meta := cnc.Metadata{ToDriverLength: 1024 + cnc.RingTrailerLength, ToClientsLength: 1024 + cnc.BroadcastTrailerLength,
		CountersMetadataLength: 64 * cnc.CounterMetadataLength, CountersValuesLength: 64 * cnc.CounterValueLength,
		ClientLivenessTimeoutNs: int64(10 * time.Second), StartTimestampMs: hb, Pid: 1 << 22}
	m, err := cnc.CreateFile(filepath.Join(dir, cnc.FileName), cnc.FileLength(meta, os.Getpagesize()))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c, err := cnc.Layout(m.Data, meta)
	if err != nil {
		t.Fatal(err)
	}
	c.ToDriver.SetConsumerHeartbeat(hb)
}

// TestDirectoryReclaim: a directory whose cnc.dat has a live driver
// heartbeat (younger than DriverTimeout) is refused with ErrActive and left
// as it is; a stale one (a driver killed), one whose driver announced its
// shutdown (-1), and a cnc.dat that does not even open are reclaimed: the
// old log buffers go, a new cnc.dat is laid out, the user's other files
// stay, and Close then removes what the dead driver and this one made.
func TestDirectoryReclaim(t *testing.T) {
	// An hour: which side of the timeout a heartbeat is on does not
	// depend on how fast this machine runs the test.
	const timeout = time.Hour
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		name    string
		hb      int64 // 0: garbage cnc.dat
		refused bool
	}{
		{"live heartbeat", now, true},
		{"heartbeat just inside the timeout", now - timeout.Milliseconds()/2, true},
		{"stale heartbeat", now - 3*timeout.Milliseconds(), false},
		{"shut down", -1, false},
		{"garbage", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			deadDriverDir(t, dir, tc.hb)
			if tc.hb == 0 {
				if err := os.WriteFile(filepath.Join(dir, cnc.FileName), []byte("not a cnc file"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old, _ := os.ReadFile(filepath.Join(dir, cnc.FileName))
			d, err := New(Config{Dir: dir, DriverTimeout: timeout, IPCTermLength: 64 << 10, TermLength: 64 << 10})
			logs, _ := filepath.Glob(filepath.Join(dir, "*", "*.logbuffer"))
			if tc.refused {
				if !errors.Is(err, ErrActive) {
					t.Fatalf("New over a live driver's directory: %v, want ErrActive", err)
				}
				now, _ := os.ReadFile(filepath.Join(dir, cnc.FileName))
				if len(logs) != 2 || string(now) != string(old) {
					t.Fatalf("a refused directory was changed: %d log buffers left, cnc.dat changed %v", len(logs), string(now) != string(old))
				}
				return
			}
			if err != nil {
				t.Fatalf("New over a dead driver's directory: %v", err)
			}
			if len(logs) != 0 {
				t.Errorf("the dead driver's log buffers are still there: %v", logs)
			}
			m, err := cnc.MapFile(filepath.Join(dir, cnc.FileName))
			if err != nil {
				t.Fatal(err)
			}
			c, err := cnc.Open(m.Data)
			if err != nil || c.Meta.Pid != int64(os.Getpid()) {
				t.Errorf("cnc.dat after reclaim: %v, pid %v", err, c)
			}
			_ = m.Close()
			// A second driver now finds a live one.
			if _, err := New(Config{Dir: dir, DriverTimeout: timeout}); !errors.Is(err, ErrActive) {
				t.Errorf("second driver over a live one: %v, want ErrActive", err)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			left, _ := os.ReadDir(dir)
			if len(left) != 1 || left[0].Name() != "keep.txt" {
				t.Errorf("after Close the directory holds %v, want only keep.txt", left)
			}
		})
	}
}
