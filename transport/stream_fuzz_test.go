package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sipua/sip/message"
)

// feedConn is a net.Conn whose reads return data in pieces sized by cuts
// (each byte gives 1 to 256 bytes; none: one byte at a time), then EOF,
// and whose writes always succeed.
type feedConn struct {
	mu    sync.Mutex
	data  []byte
	cuts  []byte
	i     int
	wrote bytes.Buffer
}

func (c *feedConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.cuts) > 0 {
		n = int(c.cuts[c.i%len(c.cuts)]) + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

func (c *feedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wrote.Write(p)
}

func (c *feedConn) Close() error        { return nil }
func (c *feedConn) LocalAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5060} }
func (c *feedConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (c *feedConn) SetDeadline(time.Time) error      { return nil }
func (c *feedConn) SetReadDeadline(time.Time) error  { return nil }
func (c *feedConn) SetWriteDeadline(time.Time) error { return nil }

// describe names a delivered unit: the message as written, or the status
// of a malformed one.
func describe(m message.Message, err error) string {
	if err != nil {
		return fmt.Sprintf("error %d", message.StatusCode(err))
	}
	return string(m.AppendTo(nil))
}

// FuzzReadStream feeds arbitrary bytes, cut at arbitrary points, to an
// inbound TCP connection of a Transport (its own framing loop on
// message.Limits.Frame): it delivers the same messages and malformed units
// as framing the bytes in one piece does, closes the
// connection for the same kind of reason, answers pings with a CRLF
// only, and never panics or hangs.
func FuzzReadStream(f *testing.F) {
	msg := testRequest("OPTIONS").String()
	for _, s := range []struct{ data, cuts string }{
		{"\r\n\r\n" + msg + "\r\n" + msg, "\x00"},
		{msg + msg, "\x05\x30\x01"},
		{"\n\n\r\n" + msg + "\r\n\r", "\x02"},
		{"OPTIONS <sip:a@b> SIP/2.0\r\nContent-Length: 0\r\n\r\n" + msg, ""},
		{strings.Replace(msg, "Content-Length: 0", "Content-Length: -5", 1) + msg, "\x10"},
		{strings.Replace(msg, "Content-Length: 0", "l: 5000", 1) + "abc", "\xff"},
		{"SIP/2.0 200 OK\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nContent-Length: 2\n\nok", "\x01\x07"},
		{"\rX" + msg, "\x00"},
		// A header section ended by bare LFs, a bad Content-Length, a CRLF
		// CRLF only later: the request is answered whatever the cuts.
		{"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\nContent-Length: x\n\nabc\r\n\r\n", "\x00"},
	} {
		f.Add([]byte(s.data), []byte(s.cuts))
	}
	lim := message.Limits{MaxMessageSize: 2048, MaxBodySize: 1024, MaxHeaders: 32, MaxLineLength: 512}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		if len(data) > 1<<14 {
			return
		}
		// What framing the bytes in one piece gives.
		var want []string
		var wantEnd error
		for b := data; ; {
			if len(b) == 0 {
				wantEnd = io.EOF
				break
			}
			n, k, err := lim.Frame(b)
			if errors.Is(err, message.ErrIncomplete) {
				wantEnd = io.ErrUnexpectedEOF
				break
			}
			if err != nil {
				wantEnd = err
				// A request whose header section is whole goes up with
				// the framing error, to be answered before the close.
				if req, _ := unframable(lim, lim.MaxMessageSize, b); req != nil && answerable(err) {
					want = append(want, describe(nil, err))
				}
				break
			}
			unit := b[:n]
			b = b[n:]
			if k != message.NoKeepalive {
				continue
			}
			m, err := lim.ParseStream(unit)
			if req, ok := m.(*message.Request); ok && err == nil {
				fixVia(req, addrPortOf((&feedConn{}).RemoteAddr()))
			}
			want = append(want, describe(m, err))
		}

		var got []string
		closed := make(chan error, 1)
		tr := New(Config{
			Limits: lim,
			OnMessage: func(in Incoming) {
				got = append(got, describe(in.Msg, in.Err))
			},
			OnConn: func(e ConnEvent) {
				if e.State == ConnClosed {
					closed <- e.Err
				}
			},
		})
		tr.linger = 0 // nobody answers here
		fc := &feedConn{data: data, cuts: cuts}
		tr.addInbound(tr.newConn(fc, nil, TCP, true))
		var end error
		select {
		case end = <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("connection still open 10 s after the end of its bytes")
		}
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}

		same := false
		for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, message.ErrContentLength, message.ErrMalformed} {
			if errors.Is(wantEnd, e) || errors.Is(end, e) {
				same = errors.Is(wantEnd, e) && errors.Is(end, e)
				break
			}
		}
		if errors.Is(wantEnd, message.ErrTooLarge) {
			same = errors.Is(end, ErrMessageTooLarge)
		}
		if !same {
			t.Fatalf("connection closed with %v, framing in one piece ends with %v", end, wantEnd)
		}
		if len(got) != len(want) {
			t.Fatalf("%d units delivered, framing in one piece has %d:\n%q\n%q", len(got), len(want), got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("unit %d differs:\n%q\n%q", i, got[i], want[i])
			}
		}
		if w := strings.ReplaceAll(fc.wrote.String(), "\r\n", ""); w != "" {
			t.Fatalf("wrote %q besides CRLF pongs", w)
		}
	})
}
