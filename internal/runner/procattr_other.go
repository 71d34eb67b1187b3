//go:build !linux

package runner

import "syscall"

// podProcAttr leaves a pod in the runner's process group: without a
// parent-death signal, a signal to the group (a terminal's Ctrl-C, or
// kill -- -PGID after the runner was killed) still reaches every pod.
func podProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
