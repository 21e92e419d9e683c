package main

import "testing"

// TestDemo runs the demo as `go run ./examples/demo` does: a whole call
// with audio both ways must succeed.
func TestDemo(t *testing.T) {
	if err := run(); err != nil {
		t.Fatal(err)
	}
}
