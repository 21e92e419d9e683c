package trace

import (
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// TextWriter is a Tracer that writes a human-readable log of the messages
// it sees, in the manner of sipp's and sngrep's message logs: a header
// line per message with the time, what happened, the transport, the
// addresses in the direction the message travelled and its size, then the
// message itself. Line ends are written as "\n"; other control bytes and
// bytes that are not valid text are escaped as \xNN, so the log stays
// plain text whatever a peer sent. For example:
//
//	----- 2026-11-25 21:30:00.123456 UTC  sent  UDP 127.0.0.1:5060 -> 127.0.0.1:5070  (412 bytes)
//	INVITE sip:bob@127.0.0.1:5070 SIP/2.0
//	Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK…
//	…
//
// Write errors are kept: the first one is returned by Err, and nothing
// more is written after it. A TextWriter is safe for concurrent use.
type TextWriter struct {
	mu   sync.Mutex
	w    io.Writer
	loc  *time.Location
	err  error
	buf  []byte
	opts TextOptions
}

// TextOptions configures a TextWriter. The zero value works.
type TextOptions struct {
	// Location is the time zone of the times written. Nil: UTC.
	Location *time.Location
	// HeadersOnly leaves message bodies out (their size is still given).
	HeadersOnly bool
}

// NewTextWriter returns a TextWriter writing to w, one Write per message.
func NewTextWriter(w io.Writer, opts TextOptions) *TextWriter {
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	return &TextWriter{w: w, loc: loc, opts: opts}
}

// Err returns the first error writing to the underlying writer, or nil.
func (t *TextWriter) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Trace writes one message.
func (t *TextWriter) Trace(ev Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return
	}
	b := t.buf[:0]
	b = append(b, "----- "...)
	b = ev.Time.In(t.loc).AppendFormat(b, "2006-01-02 15:04:05.000000 MST")
	b = append(b, "  "...)
	b = append(b, ev.Dir.String()...)
	b = append(b, "  "...)
	b = appendLine(b, ev.Transport)
	if ev.ConnID != 0 {
		b = append(b, '#')
		b = strconv.AppendUint(b, ev.ConnID, 10)
	}
	b = append(b, ' ')
	b = ev.Source().AppendTo(b)
	b = append(b, " -> "...)
	b = ev.Destination().AppendTo(b)
	b = append(b, "  ("...)
	b = strconv.AppendInt(b, int64(len(ev.Raw)), 10)
	b = append(b, " bytes)\n"...)
	if ev.Err != nil {
		if ev.Dir == SendFailed {
			b = append(b, "!! send failed: "...)
		} else {
			b = append(b, "!! malformed: "...)
		}
		b = appendLine(b, ev.Err.Error())
		b = append(b, '\n')
	}
	if ev.Dir != SendFailed { // its bytes were logged with its Sent event
		raw := ev.Raw
		if t.opts.HeadersOnly {
			raw = headerSection(raw)
		}
		b = appendText(b, raw)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
	}
	b = append(b, '\n')
	t.buf = b
	if _, err := t.w.Write(b); err != nil {
		t.err = fmt.Errorf("trace: writing the text log: %w", err)
	}
}

// headerSection returns raw up to the blank line after the headers.
func headerSection(raw []byte) []byte {
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\n' {
			continue
		}
		if raw[i+1] == '\n' {
			return raw[:i+1]
		}
		if raw[i+1] == '\r' && i+2 < len(raw) && raw[i+2] == '\n' {
			return raw[:i+1]
		}
	}
	return raw
}

// appendLine appends s as appendText does, with line ends escaped too, so
// that it stays on one line.
func appendLine(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' {
			b = appendText(b, []byte(s[:i]))
			b = append(b, '\\', 'x', '0', "0123456789abcdef"[c&15])
			return appendLine(b, s[i+1:])
		}
	}
	return appendText(b, []byte(s))
}

// appendText appends raw with CRLF and lone CR turned into "\n", tabs and
// printable UTF-8 kept, and every other byte escaped as \xNN.
func appendText(b, raw []byte) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\r':
			b = append(b, '\n')
			i++
			if i < len(raw) && raw[i] == '\n' {
				i++
			}
			continue
		case c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f):
			b = append(b, c)
			i++
			continue
		case c >= 0x80:
			if r, n := decodeRune(raw[i:]); r >= 0 {
				b = append(b, raw[i:i+n]...)
				i += n
				continue
			}
		}
		b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		i++
	}
	return b
}

// decodeRune returns the printable rune at the start of p and its length,
// or -1 for an invalid, control or format sequence.
func decodeRune(p []byte) (rune, int) {
	r, n := utf8.DecodeRune(p)
	if r == utf8.RuneError && n <= 1 {
		return -1, 1
	}
	if !unicode.IsPrint(r) {
		return -1, n
	}
	return r, n
}
