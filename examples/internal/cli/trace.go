package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sipua/sip/trace"
)

// Trace is an open -trace destination: the Tracer for
// sip.UserAgentOptions.Tracer and what to close at the end.
type Trace struct {
	Tracer trace.Tracer
	file   *os.File
	err    func() error
}

// OpenTrace opens the -trace destination path: a pcap file (readable by
// tshark, Wireshark and sngrep) when the name ends in .pcap, "-" for a
// text log on stderr, any other name for a text log in that file. An
// empty path returns nil. The credentials of Authorization and
// Proxy-Authorization fields are redacted (trace.Redact) unless secrets
// is set (-trace-secrets).
func OpenTrace(path string, secrets bool, stderr io.Writer) (*Trace, error) {
	t, err := openTrace(path, stderr)
	if t != nil && !secrets {
		t.Tracer = trace.Redact(t.Tracer)
	}
	return t, err
}

func openTrace(path string, stderr io.Writer) (*Trace, error) {
	if path == "" {
		return nil, nil
	}
	if path == "-" {
		tw := trace.NewTextWriter(stderr, trace.TextOptions{})
		return &Trace{Tracer: tw, err: tw.Err}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%w: -trace: %w", ErrUsage, err)
	}
	if strings.HasSuffix(strings.ToLower(path), ".pcap") {
		pw, err := trace.NewPcapWriter(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%w: -trace: %w", ErrUsage, err)
		}
		return &Trace{Tracer: pw, file: f, err: pw.Err}, nil
	}
	tw := trace.NewTextWriter(f, trace.TextOptions{})
	return &Trace{Tracer: tw, file: f, err: tw.Err}, nil
}

// Close closes the file and returns the first error met writing it.
func (t *Trace) Close() error {
	if t == nil {
		return nil
	}
	err := t.err()
	if t.file != nil {
		if cerr := t.file.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("trace: %w", err)
	}
	return nil
}
