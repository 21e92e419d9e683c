package message

import (
	"bytes"
	"errors"
	"io"
)

// Keepalive tells what a stream unit that is not a message was (RFC 5626
// §4.4.1).
type Keepalive int

// Keepalive kinds.
const (
	// NoKeepalive: the unit was a message.
	NoKeepalive Keepalive = iota
	// Ping is a double CRLF: the peer expects a Pong (a single CRLF).
	Ping
	// Pong is a single CRLF, the answer to a Ping.
	Pong
)

func (k Keepalive) String() string {
	switch k {
	case Ping:
		return "ping"
	case Pong:
		return "pong"
	}
	return "none"
}

// Frame finds the first unit of a stream transport's buffer (TCP, TLS):
// a keepalive or a whole message delimited by Content-Length (RFC 3261
// §18.3). It returns the unit's length n and its kind. For a message the
// bytes b[:n] go to ParseStream. With too few bytes it returns
// ErrIncomplete: read more and call again. Any other error is fatal to the
// connection: the stream cannot be framed any more.
//
// Content-Length is required on streams; a message without one has an
// empty body. A CRLF with nothing after it yet is taken as a pong: a peer
// writes the four bytes of a ping together.
func (l Limits) Frame(b []byte) (n int, k Keepalive, err error) {
	lim := l.norm()
	if len(b) == 0 {
		return 0, NoKeepalive, ErrIncomplete
	}
	if b[0] == '\r' || b[0] == '\n' {
		switch {
		case bytes.HasPrefix(b, crlfcrlf):
			return 4, Ping, nil
		case len(b) >= 2 && b[0] == '\r' && b[1] == '\n':
			if len(b) == 3 && b[2] == '\r' {
				return 0, NoKeepalive, ErrIncomplete
			}
			return 2, Pong, nil
		case b[0] == '\n':
			// A bare LF between messages: skip it like a pong.
			return 1, Pong, nil
		case len(b) >= 2:
			// A CR not followed by LF starts neither a keepalive nor a
			// message: waiting for more would only stall the stream.
			return 0, NoKeepalive, errorf(ErrMalformed, "", "stray CR between messages")
		}
		return 0, NoKeepalive, ErrIncomplete
	}
	he := HeaderEnd(b)
	if he < 0 {
		if len(b) > lim.MaxMessageSize {
			e := errorf(ErrTooLarge, "", "no end of header section in %d bytes", len(b))
			e.Status = 513
			return 0, NoKeepalive, e
		}
		return 0, NoKeepalive, ErrIncomplete
	}
	if he > lim.MaxMessageSize {
		// The same error as when these bytes come in smaller pieces.
		e := errorf(ErrTooLarge, "", "header section of %d bytes over the message limit of %d", he, lim.MaxMessageSize)
		e.Status = 513
		return 0, NoKeepalive, e
	}
	cl, err := scanContentLength(b[:he])
	if err != nil {
		return 0, NoKeepalive, err
	}
	if cl > lim.MaxBodySize {
		e := errorf(ErrTooLarge, "", "body of %d bytes over the limit of %d", cl, lim.MaxBodySize)
		e.Status = 413
		return 0, NoKeepalive, e
	}
	if he+cl > lim.MaxMessageSize {
		e := errorf(ErrTooLarge, "", "message of %d bytes over the limit of %d", he+cl, lim.MaxMessageSize)
		e.Status = 513
		return 0, NoKeepalive, e
	}
	if len(b) < he+cl {
		return 0, NoKeepalive, ErrIncomplete
	}
	return he + cl, NoKeepalive, nil
}

// scanContentLength finds the Content-Length of a header section without
// parsing the rest. Absent means 0.
func scanContentLength(hdr []byte) (int, error) {
	cl := -1
	for len(hdr) > 0 {
		i := bytes.IndexByte(hdr, '\n')
		if i < 0 {
			i = len(hdr)
		}
		line := hdr[:i]
		if i < len(hdr) {
			hdr = hdr[i+1:]
		} else {
			hdr = nil
		}
		if len(line) == 0 || (line[0] != 'c' && line[0] != 'C' && line[0] != 'l' && line[0] != 'L') {
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name := string(bytes.TrimRight(line[:colon], " \t"))
		if lookupID(name) != hContentLength {
			continue
		}
		if cl >= 0 {
			return 0, errorf(ErrContentLength, "Content-Length", "repeated")
		}
		v := trimWS(string(line[colon+1:]))
		n, ok := parseUint(v, 1<<31-1)
		if !ok {
			return 0, errorf(ErrContentLength, "Content-Length", "%q", truncate(v))
		}
		cl = int(n)
	}
	if cl < 0 {
		return 0, nil
	}
	return cl, nil
}

// ParseStream parses one message framed by Frame: its body is exactly
// Content-Length bytes (0 without a Content-Length).
func (l Limits) ParseStream(b []byte) (Message, error) {
	return parse(b, l.norm(), true)
}

// StreamReader reads messages and keepalives from a byte stream (TCP,
// TLS). It is not safe for concurrent use.
type StreamReader struct {
	r      io.Reader
	lim    Limits
	buf    []byte
	start  int
	end    int
	broken error
}

// NewStreamReader returns a StreamReader reading from r with limits lim.
func NewStreamReader(r io.Reader, lim Limits) *StreamReader {
	return &StreamReader{r: r, lim: lim, buf: make([]byte, 4096)}
}

// Next returns the next message, or a keepalive with a nil message. A
// message that is framed correctly but malformed inside is returned as an
// error that leaves the reader usable (the next call goes on with the
// following message); framing errors and read errors are returned again by
// every later call. At the end of the stream Next returns io.EOF, or
// io.ErrUnexpectedEOF when the stream ended inside a message.
func (s *StreamReader) Next() (Message, Keepalive, error) {
	if s.broken != nil {
		return nil, NoKeepalive, s.broken
	}
	for {
		if s.end > s.start {
			n, k, err := s.lim.Frame(s.buf[s.start:s.end])
			if err == nil {
				unit := s.buf[s.start : s.start+n]
				s.start += n
				if k != NoKeepalive {
					return nil, k, nil
				}
				m, err := s.lim.ParseStream(unit)
				return m, NoKeepalive, err
			}
			if !errors.Is(err, ErrIncomplete) {
				s.broken = err
				return nil, NoKeepalive, err
			}
		}
		// Need more bytes: compact, grow within the limit, read.
		if s.start > 0 {
			copy(s.buf, s.buf[s.start:s.end])
			s.end -= s.start
			s.start = 0
		}
		if s.end == len(s.buf) {
			max := s.lim.norm().MaxMessageSize + 4
			if len(s.buf) >= max {
				s.broken = errorf(ErrTooLarge, "", "message over %d bytes", max)
				return nil, NoKeepalive, s.broken
			}
			nb := make([]byte, min(2*len(s.buf), max))
			copy(nb, s.buf[:s.end])
			s.buf = nb
		}
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if err != nil && n == 0 {
			if errors.Is(err, io.EOF) && s.end > s.start {
				if n, k, ferr := s.lim.Frame(s.buf[s.start:s.end]); ferr == nil && k == Pong && n == s.end-s.start {
					s.start = s.end
					return nil, Pong, nil
				}
				err = io.ErrUnexpectedEOF
			}
			s.broken = err
			return nil, NoKeepalive, err
		}
	}
}
