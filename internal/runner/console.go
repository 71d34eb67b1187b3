package runner

import (
	"bytes"
	"io"
	"os"
	"sync"
)

// Console is the runner's one output: a live status line and everything
// else (its own messages, its log lines, the summary) go through it, so a
// log line never cuts into the status line. On a terminal the status line
// is redrawn in place below the other output; elsewhere each status line
// is an ordinary line. Safe for concurrent use.
type Console struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	status string // the status line shown (tty), "" if none
	err    error  // first write error
}

// NewConsole returns a Console on w; tty says whether w is a terminal (see
// IsTerminal).
func NewConsole(w io.Writer, tty bool) *Console { return &Console{w: w, tty: tty} }

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (c *Console) write(b []byte) {
	if _, err := c.w.Write(b); err != nil && c.err == nil {
		c.err = err
	}
}

// Write writes p above the status line (p should end with a newline; one
// is added if not).
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.status != "" {
		c.write([]byte("\r\033[K"))
	}
	c.write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		c.write([]byte{'\n'})
	}
	if c.tty && c.status != "" {
		c.write([]byte(c.status))
	}
	return len(p), nil
}

// Status shows line as the live status line.
func (c *Console) Status(line string) {
	line = string(bytes.TrimRight([]byte(line), "\n"))
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.tty {
		c.write([]byte(line + "\n"))
		return
	}
	c.write([]byte("\r\033[K" + line))
	c.status = line
}

// EndStatus leaves the status line shown as an ordinary line: what comes
// next is written below it.
func (c *Console) EndStatus() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tty && c.status != "" {
		c.write([]byte{'\n'})
	}
	c.status = ""
}

// Err returns the first write error.
func (c *Console) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
