//go:build linux

package interop

import "syscall"

// chromiumProcAttr puts Chromium in its own process group (stop kills the
// group) and has the kernel send it SIGTERM should the test binary die
// without running its cleanups (a crash, a timeout panic), so that no
// browser outlives the test.
func chromiumProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
