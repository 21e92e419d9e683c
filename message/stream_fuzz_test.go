package message

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// chunkReader hands out data in pieces whose sizes come from cuts, in
// turn (each byte gives 1 to 256 bytes); no cuts means one byte at a time.
type chunkReader struct {
	data []byte
	cuts []byte
	i    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.cuts) > 0 {
		n = int(r.cuts[r.i%len(r.cuts)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// streamUnits reads a stream to its end and describes what came out: one
// line per message (as written again) or per malformed message (its
// status), the number of keepalive line ends (a ping counts two: a ping
// cut in two is read as two pongs), and the final error's class.
func streamUnits(t *testing.T, r io.Reader, lim Limits) (units []string, pongs int, end error) {
	t.Helper()
	sr := NewStreamReader(r, lim)
	for i := 0; ; i++ {
		if i > 1<<16 {
			t.Fatalf("more units than bytes")
		}
		m, k, err := sr.Next()
		switch {
		case err == nil && k == Ping:
			pongs += 2
		case err == nil && k == Pong:
			pongs++
		case err == nil && m == nil:
			t.Fatalf("no message, no keepalive, no error")
		case err == nil:
			w := m.AppendTo(nil)
			if n, kk, ferr := lim.Frame(w); ferr != nil || kk != NoKeepalive || n != len(w) {
				t.Fatalf("message written as %q frames as %d, %v, %v", w, n, kk, ferr)
			}
			units = append(units, string(w))
		default:
			if sr.broken == nil {
				// Framed but malformed inside: the reader goes on.
				units = append(units, fmt.Sprintf("error %d", StatusCode(err)))
				continue
			}
			// Sticky: every later call returns it again.
			if _, _, again := sr.Next(); again != err {
				t.Fatalf("error not sticky: %v then %v", err, again)
			}
			return units, pongs, err
		}
	}
}

// sameEnd reports whether two final stream errors are of the same kind.
func sameEnd(a, b error) bool {
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, ErrTooLarge, ErrContentLength, ErrMalformed} {
		if errors.Is(a, e) || errors.Is(b, e) {
			return errors.Is(a, e) && errors.Is(b, e)
		}
	}
	return false
}

// FuzzStream checks stream framing (Limits.Frame through StreamReader,
// with RFC 5626 CRLF keepalives) on arbitrary bytes cut at arbitrary
// points: the messages, malformed units and the way the stream ends are
// the same as when the bytes come in one piece, and never a panic or an
// endless loop.
func FuzzStream(f *testing.F) {
	m := msgWithBody("hello")
	for _, s := range []struct{ data, cuts string }{
		{"\r\n\r\n" + m + "\r\n" + msgWithBody("") + msgWithBody("z"), "\x00"},
		{m + m, "\x05\x30\x01"},
		{"\n\n\r\n" + m + "\r\n\r", "\x02"},
		{"OPTIONS <sip:a@b> SIP/2.0\r\nContent-Length: 0\r\n\r\n" + m, ""},
		{basicReq + "Content-Length: -5\r\n\r\n" + m, "\x10"},
		{basicReq + "l: 5000\r\n\r\nabc", "\xff"},
		{basicReq + "Content-Length: 1\r\nl: 1\r\n\r\nx", "\x03"},
		{"SIP/2.0 200 OK\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nContent-Length: 2\n\nok", "\x01\x07"},
		{"\rX" + m, "\x00"},
		{basicReq + "Content-Length: 3\n\r\nabc" + m, "\x00\x01"},
		{basicReq + "X-Long: " + strings.Repeat("a", 2100) + "\r\nContent-Length: x\r\n\r\n", "\xff"},
	} {
		f.Add([]byte(s.data), []byte(s.cuts))
	}
	// Small limits, so that the fuzzer reaches them.
	lim := Limits{MaxMessageSize: 2048, MaxBodySize: 1024, MaxHeaders: 32, MaxLineLength: 512}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		if len(data) > 1<<14 {
			return
		}
		wu, wp, we := streamUnits(t, bytes.NewReader(data), lim)
		su, sp, se := streamUnits(t, &chunkReader{data: data, cuts: cuts}, lim)
		if !sameEnd(we, se) {
			t.Fatalf("stream ends with %v in one piece, %v when cut", we, se)
		}
		if len(wu) != len(su) {
			t.Fatalf("%d units in one piece, %d when cut:\n%q\n%q", len(wu), len(su), wu, su)
		}
		for i := range wu {
			if wu[i] != su[i] {
				t.Fatalf("unit %d differs:\n%q\n%q", i, wu[i], su[i])
			}
		}
		if errors.Is(we, io.EOF) && wp != sp {
			t.Fatalf("%d keepalive line ends in one piece, %d when cut", wp, sp)
		}
	})
}
