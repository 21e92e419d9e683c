//go:build !cgo

package opus

import (
	"errors"
	"testing"
)

func TestUnavailableWithoutCgo(t *testing.T) {
	if err := Available(); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Available: %v", err)
	}
	if _, err := NewEncoder(EncoderOptions{}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewEncoder: %v", err)
	}
	if _, err := NewDecoder(1); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewDecoder: %v", err)
	}
	if _, err := NewEncoder(EncoderOptions{Channels: 3}); !errors.Is(err, ErrInvalid) {
		t.Errorf("NewEncoder with 3 channels: %v", err)
	}
	if Version() != "" {
		t.Error("a version without libopus")
	}
}
