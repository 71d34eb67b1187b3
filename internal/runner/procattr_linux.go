package runner

import "syscall"

// podProcAttr puts a pod in its own process group (a terminal's Ctrl-C
// reaches the runner only, which then stops the pods in order: subscribers
// first) and has the kernel SIGKILL it when the runner dies, however it
// dies: a SIGKILLed runner leaves no pod holding its ports.
//
// (Pdeathsig fires when the thread that started the pod exits; the Go
// runtime does not end its threads while the program runs.)
func podProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
