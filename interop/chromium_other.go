//go:build !linux

package interop

import "syscall"

// chromiumProcAttr puts Chromium in its own process group (stop kills the
// group).
func chromiumProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
