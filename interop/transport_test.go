package interop

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		RemoveExampleBuilds()
		os.Exit(code)
	}))
}

var allProtos = []transport.Proto{transport.UDP, transport.TCP, transport.TLS, transport.WS, transport.WSS}

// rawRegister returns a REGISTER for user written out by hand, as a peer
// would send it; the transport fills in the top Via.
func rawRegister(user string, cseq int, contact string, auth string) *message.Request {
	raw := "REGISTER sip:" + Domain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP placeholder.invalid;branch=" + message.NewBranch() + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + user + "@" + Domain + ">;tag=" + message.NewTag() + "\r\n" +
		"To: <sip:" + user + "@" + Domain + ">\r\n" +
		"Call-ID: " + message.NewCallID() + "\r\n" +
		fmt.Sprintf("CSeq: %d REGISTER\r\n", cseq) +
		"Contact: <" + contact + ">\r\n" +
		"Expires: 60\r\n"
	if auth != "" {
		raw += "Authorization: " + auth + "\r\n"
	}
	raw += "Content-Length: 0\r\n\r\n"
	req, err := message.ParseRequest([]byte(raw))
	if err != nil {
		panic(err)
	}
	return req
}

// retry returns the request a UA sends after a challenge to req: a copy
// with CSeq+1 and a new branch (digest.Client adds the credentials).
func retry(req *message.Request) *message.Request {
	n := req.Clone()
	cs, err := n.Header.CSeq()
	if err != nil {
		panic(err)
	}
	n.Header.Set("CSeq", fmt.Sprintf("%d %s", cs.Seq+1, cs.Method))
	n.Header.Set("Via", "SIP/2.0/UDP placeholder.invalid;branch="+message.NewBranch())
	return n
}

// awaitResponse waits for the response to the request with callID.
func awaitResponse(t *testing.T, in <-chan transport.Incoming, callID string) (*message.Response, transport.Flow) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-in:
			r, ok := m.Msg.(*message.Response)
			if !ok || m.Err != nil || r.Header.CallID() != callID || r.StatusCode < 200 {
				continue
			}
			return r, m.Flow
		case <-timeout:
			t.Fatalf("no final response for Call-ID %s", callID)
			return nil, transport.Flow{}
		}
	}
}

// TestKamailioRegister sends a raw REGISTER through the transport package
// over each transport to Kamailio and expects its 401 with a parseable
// Digest challenge, then lets digest.Client answer it and expects 200. A
// client with a wrong password gets ErrAuthFailed after exactly one retry.
func TestKamailioRegister(t *testing.T) {
	k := StartKamailio(t)
	for _, proto := range allProtos {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			in := make(chan transport.Incoming, 16)
			tr := transport.New(transport.Config{
				OnMessage: func(m transport.Incoming) { in <- m },
				TLSConfig: &tls.Config{RootCAs: k.CertPool}, // verification on, private CA
			})
			defer tr.Close()
			if proto == transport.UDP {
				_, err := tr.Listen(ctx, transport.UDP, "127.0.0.1:0")
				require.NoError(t, err)
			}
			contact := "sip:alice@127.0.0.1;transport=" + proto.Param()
			if proto.WebSocket() {
				contact = "sip:alice@" + tr.InvalidHost() + ";transport=ws"
			}

			req := rawRegister("alice", 1, contact, "")
			flow, err := tr.SendRequest(ctx, req, k.Target(proto))
			require.NoError(t, err)
			resp, rflow := awaitResponse(t, in, req.Header.CallID())
			require.Equal(t, 401, resp.StatusCode, "Kamailio over %s: %s", proto, resp.StatusLine())
			assert.Equal(t, flow, rflow, "response came back on the request's flow")
			v, err := resp.Header.TopVia()
			require.NoError(t, err)
			assert.Equal(t, string(proto), v.Transport)
			rport, ok := v.RPort()
			assert.True(t, ok)
			assert.Equal(t, int(flow.Local.Port()), rport, "Kamailio filled rport with our source port")
			if proto.WebSocket() {
				assert.Equal(t, tr.InvalidHost(), v.Host, "RFC 7118 §5 Via host")
			}

			chs, err := digest.ParseChallenges(resp)
			require.NoError(t, err)
			require.NotEmpty(t, chs)
			assert.Equal(t, Domain, chs[0].Realm)
			assert.NotEmpty(t, chs[0].Nonce)
			assert.Contains(t, chs[0].QOP, "auth")
			assert.False(t, chs[0].Proxy)

			// With credentials Kamailio registers the contact.
			client := digest.NewClient(digest.Credentials{Username: "alice", Password: Users["alice"]})
			req2 := retry(req)
			require.NoError(t, client.Authorize(req2, resp))
			_, err = tr.SendRequest(ctx, req2, rflow.Target())
			require.NoError(t, err)
			resp2, _ := awaitResponse(t, in, req2.Header.CallID())
			require.Equal(t, 200, resp2.StatusCode, resp2.StatusLine())
			cs, err := resp2.Header.Contacts()
			require.NoError(t, err)
			require.NotEmpty(t, cs)

			// A wrong password is refused again, and the client gives up
			// after that one retry.
			bad := digest.NewClient(digest.Credentials{Username: "alice", Password: "wrong"})
			b1 := rawRegister("alice", 1, contact, "")
			_, err = tr.SendRequest(ctx, b1, rflow.Target())
			require.NoError(t, err)
			r1, _ := awaitResponse(t, in, b1.Header.CallID())
			require.Equal(t, 401, r1.StatusCode, r1.StatusLine())
			b2 := retry(b1)
			require.NoError(t, bad.Authorize(b2, r1))
			_, err = tr.SendRequest(ctx, b2, rflow.Target())
			require.NoError(t, err)
			r2, _ := awaitResponse(t, in, b2.Header.CallID())
			require.Contains(t, []int{401, 403}, r2.StatusCode)
			if r2.StatusCode == 401 {
				require.ErrorIs(t, bad.Authorize(retry(b2), r2), digest.ErrAuthFailed)
			}
		})
	}
}

// TestKamailioKeepalive keeps TCP, TLS, WS and WSS connections to
// Kamailio open with fast keepalives: Kamailio answers CRLF pings (RFC
// 5626) and WebSocket pings, so no connection is reported dead.
func TestKamailioKeepalive(t *testing.T) {
	k := StartKamailio(t)
	for _, proto := range allProtos[1:] {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			events := make(chan transport.ConnEvent, 16)
			tr := transport.New(transport.Config{
				OnConn:    func(e transport.ConnEvent) { events <- e },
				TLSConfig: &tls.Config{RootCAs: k.CertPool},
				Keepalive: transport.Keepalive{Interval: 100 * time.Millisecond, Timeout: 1500 * time.Millisecond},
			})
			defer tr.Close()
			up, err := tr.Connect(transport.UpstreamConfig{Servers: []transport.Server{{Addr: serverAddr(k, proto)}}})
			require.NoError(t, err)
			defer up.Close()
			f, err := up.WaitConnected(ctx)
			require.NoError(t, err)
			assert.Equal(t, proto, f.Proto)
			select {
			case e := <-events:
				require.Equal(t, transport.ConnOpen, e.State)
			case <-ctx.Done():
				t.Fatal("no open event")
			}
			// About twenty keepalive rounds: an unanswered one would close the
			// connection after 1.6 s (generous, so that a loaded machine's
			// scheduling delays are not taken for a dead peer).
			select {
			case e := <-events:
				t.Fatalf("connection event during keepalives: %v %v", e.State, e.Err)
			case <-time.After(2 * time.Second):
			}
			cur, ok := up.Flow()
			assert.True(t, ok)
			assert.Equal(t, f, cur)
		})
	}
}

func serverAddr(k *Kamailio, proto transport.Proto) string {
	switch proto {
	case transport.WS:
		return fmt.Sprintf("ws://127.0.0.1:%d/", k.WSPort)
	case transport.WSS:
		return fmt.Sprintf("wss://127.0.0.1:%d/", k.WSSPort)
	case transport.TLS:
		return fmt.Sprintf("sips:127.0.0.1:%d", k.TLSPort)
	}
	return fmt.Sprintf("sip:127.0.0.1:%d;transport=%s", k.SIPPort, proto.Param())
}
