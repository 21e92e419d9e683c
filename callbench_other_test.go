//go:build !unix

package sip

// cpuMicros is not measured here.
func cpuMicros() int64 { return 0 }
