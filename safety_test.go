package sip

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"hash"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/digest"
	"github.com/sipua/sip/message"
	"github.com/sipua/sip/siptest/sipserver"
	"github.com/sipua/sip/transport"
)

// TestAcceptOnlyFromServer: with the option on, requests sent straight to
// the UserAgent's listen addresses (a scanner ringing the phone) get no
// answer and never reach the application, over UDP and TCP, whether the
// server is reached over UDP or TCP; the same requests through the
// server do.
func TestAcceptOnlyFromServer(t *testing.T) {
	assertBadOptions := func() {
		_, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", AcceptOnlyFromServer: true,
			Transport: TransportOptions{Listen: []string{"udp://127.0.0.1:0"}}})
		assert.ErrorIs(t, err, ErrBadOptions, "AcceptOnlyFromServer without a server")
	}
	assertBadOptions()

	for _, serverProto := range []transport.Proto{transport.UDP, transport.TCP} {
		t.Run(string(serverProto), func(t *testing.T) {
			srv, err := sipserver.New(sipserver.Options{Users: map[string]string{"bob": "bob-pw", "alice": "alice-pw"},
				Listen: []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"}})
			require.NoError(t, err)
			require.NoError(t, srv.Start(ctx5(t)))
			t.Cleanup(func() { srv.Close() })

			var mu sync.Mutex
			var got []string
			invs := make(chan *Invitation, 8)
			note := func(s string) { mu.Lock(); got = append(got, s); mu.Unlock() }
			h := startHostileUA(t, func(o *UserAgentOptions) {
				o.URI = srv.AOR("bob")
				o.AuthorizationPassword = "bob-pw"
				o.AcceptOnlyFromServer = true
				o.Transport.Server = srv.URI(serverProto).String()
				o.Transport.Listen = []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0", "ws://127.0.0.1:0"}
				o.Delegate.OnMessage = func(m *IncomingRequest) { note("MESSAGE " + string(m.Request.Body)) }
				o.Delegate.OnInvite = func(inv *Invitation) {
					note("INVITE")
					invs <- inv
					_ = inv.Accept(context.Background(), AcceptOptions{})
				}
				o.Delegate.OnRequest = func(r *IncomingRequest) { note(r.Request.Method) }
			})
			reg, err := NewRegisterer(h.ua, RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, reg.Register(ctx5(t), RegisterOptions{}))

			// The scanner: straight to every listen address.
			for _, proto := range []transport.Proto{transport.UDP, transport.TCP, transport.WS} {
				w, err := dialWire(t, h, proto)
				require.NoError(t, err)
				id := "scan-" + string(proto)
				w.send(t, invite(w, "z9hG4bK-i"+id, "i"+id))
				w.send(t, messageReq(w, "z9hG4bK-m"+id, "m"+id))
				w.send(t, probe(w, "z9hG4bK-o"+id, "o"+id))
				w.send(t, []byte("garbage\r\n\r\n"))
				select {
				case r := <-w.resps:
					t.Errorf("scanner answered over %s: %d %s", proto, r.StatusCode, r.Header.CallID())
				case <-time.After(300 * time.Millisecond):
				}
				w.close()
			}
			mu.Lock()
			assert.Empty(t, got, "requests from the scanner reached the application")
			mu.Unlock()

			// Through the server, the same requests arrive.
			alice, err := NewUserAgent(UserAgentOptions{URI: srv.AOR("alice"), AuthorizationPassword: "alice-pw",
				Transport: TransportOptions{Server: srv.URI(transport.TCP).String()}, MediaFactory: NoMedia})
			require.NoError(t, err)
			require.NoError(t, alice.Start(ctx5(t)))
			t.Cleanup(func() { _ = alice.Stop(context.Background()) })
			m, err := NewMessager(alice, srv.AOR("bob"), []byte("via the server"), "text/plain", RequestOptions{})
			require.NoError(t, err)
			require.NoError(t, m.Message(ctx5(t)))
			opts, err := alice.Options(ctx5(t), srv.AOR("bob"), RequestOptions{})
			require.NoError(t, err)
			assert.Equal(t, 200, opts.StatusCode)
			mu.Lock()
			assert.Equal(t, []string{"MESSAGE via the server"}, got)
			mu.Unlock()

			// A call through the server: its in-dialog requests are taken
			// from anywhere (a BYE straight to the Contact, as a peer sends
			// when the proxy does not record-route); a BYE with guessed tags
			// is not.
			call, err := NewInviter(alice, srv.AOR("bob"), InviterOptions{})
			require.NoError(t, err)
			require.NoError(t, call.Invite(ctx5(t), InviteOptions{}))
			inv := <-invs
			require.Eventually(t, func() bool { return inv.State() == SessionEstablished }, 5*time.Second, 10*time.Millisecond)
			callID, local, remote := inv.DialogID()
			w, err := dialWire(t, h, transport.UDP)
			require.NoError(t, err)
			bye := func(branch, toTag string) []byte {
				return []byte("BYE sip:bob@127.0.0.1 SIP/2.0\r\nVia: " + w.via(branch) + "\r\nMax-Forwards: 70\r\n" +
					"From: <" + srv.AOR("alice") + ">;tag=" + remote + "\r\nTo: <" + srv.AOR("bob") + ">;tag=" + toTag + "\r\n" +
					"Call-ID: " + callID + "\r\nCSeq: 100 BYE\r\nContent-Length: 0\r\n\r\n")
			}
			w.send(t, bye("z9hG4bK-guess", "guessed"))
			select {
			case r := <-w.resps:
				t.Errorf("BYE with guessed tags answered: %d", r.StatusCode)
			case <-time.After(300 * time.Millisecond):
			}
			w.send(t, bye("z9hG4bK-direct", local))
			select {
			case r := <-w.resps:
				assert.Equal(t, 200, r.StatusCode, "BYE of the dialog straight to the Contact")
			case <-time.After(5 * time.Second):
				t.Error("BYE of the dialog dropped")
			}
			assert.Eventually(t, func() bool { return inv.State() == SessionTerminated }, 5*time.Second, 10*time.Millisecond)
			w.close()
			_ = call.Dispose(ctx5(t))
			require.NoError(t, reg.Unregister(ctx5(t), UnregisterOptions{}))
		})
	}
}

// selfSigned returns a server certificate for 127.0.0.1 that no root
// vouches for, and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "self-signed"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTLSVerifiedByDefault: a UserAgent refuses a TLS or WSS server with
// a self-signed certificate unless told to trust it (RootCAs) or to skip
// verification (InsecureSkipVerify).
func TestTLSVerifiedByDefault(t *testing.T) {
	cert, pool := selfSigned(t)
	srv := transport.New(transport.Config{ServerTLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	defer srv.Close()
	tlsAddr, err := srv.Listen(ctx5(t), transport.TLS, "127.0.0.1:0")
	require.NoError(t, err)
	wssAddr, err := srv.Listen(ctx5(t), transport.WSS, "127.0.0.1:0")
	require.NoError(t, err)
	servers := map[string]string{"tls": "sips:" + tlsAddr.String(), "wss": "wss://" + wssAddr.String()}
	for name, server := range servers {
		t.Run(name, func(t *testing.T) {
			start := func(cfg *tls.Config) (*UserAgent, *syncBuffer, error) {
				logs := &syncBuffer{}
				ua, err := NewUserAgent(UserAgentOptions{URI: "sip:bob@127.0.0.1", MediaFactory: NoMedia,
					Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
					Transport: TransportOptions{Server: server, TLSConfig: cfg, ReconnectMin: time.Hour}})
				require.NoError(t, err)
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				err = ua.Start(ctx)
				t.Cleanup(func() { _ = ua.Stop(context.Background()) })
				return ua, logs, err
			}
			_, logs, err := start(nil)
			require.ErrorIs(t, err, ErrTransportClosed, "self-signed certificate accepted by default")
			assert.Eventually(t, func() bool { return strings.Contains(logs.String(), "certificate signed by unknown authority") },
				5*time.Second, 10*time.Millisecond, "the attempt fails on the certificate")

			_, _, err = start(&tls.Config{RootCAs: pool})
			assert.NoError(t, err, "trusted with RootCAs")
			_, _, err = start(&tls.Config{InsecureSkipVerify: true})
			assert.NoError(t, err, "verification skipped on request")
		})
	}
}

// digestRegistrar answers REGISTER over UDP: first with the challenges of
// ds, then 200 if the credentials verify; it records the requests.
type digestRegistrar struct {
	conn *net.UDPConn
	ds   *digest.Server
	mu   sync.Mutex
	reqs []*message.Request
	done chan struct{}
}

func newDigestRegistrar(t *testing.T, ds *digest.Server) *digestRegistrar {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	r := &digestRegistrar{conn: c, ds: ds, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			req, err := message.ParseRequest(buf[:n])
			if err != nil {
				continue
			}
			r.mu.Lock()
			r.reqs = append(r.reqs, req)
			r.mu.Unlock()
			resp := message.NewResponse(req, 200, "", "")
			switch {
			case req.Method != "REGISTER":
			case !req.Header.Has("Authorization"):
				resp = message.NewResponse(req, 401, "", "")
				ds.Challenge(resp, false)
			default:
				if _, err := ds.Verify(req); err != nil {
					resp = message.NewResponse(req, 403, "", "")
				} else if req.Header.Has("Contact") {
					resp.Header.Add("Contact", req.Header.Get("Contact")+";expires=300")
				}
			}
			_, _ = c.WriteToUDP([]byte(resp.String()), from)
		}
	}()
	t.Cleanup(func() { c.Close(); <-r.done })
	return r
}

func (r *digestRegistrar) authorizations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, req := range r.reqs {
		if a := req.Header.Get("Authorization"); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func hexHash(h hash.Hash, s string) string {
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}

// TestDigestStrongestAndNoSecretsLogged registers against a registrar
// that offers MD5, SHA-256 and SHA-512-256 (in that order) with qop auth
// and auth-int: the UserAgent answers with SHA-512-256, and the server
// verifies it. Offered only MD5 and SHA-256, it picks SHA-256; offered
// auth-int only, it answers auth-int. Throughout, with the UserAgent
// logging at debug level, neither the password, nor any HA1, nor a digest
// response shows up in the logs.
func TestDigestStrongestAndNoSecretsLogged(t *testing.T) {
	const password = "S3cret-never-in-logs"
	for _, tc := range []struct {
		name      string
		algs, qop []string
		wantAlg   string
		wantQOP   string
		ha1       bool // credentials as an HA1 callback, not a password
	}{
		{"all-three", []string{"MD5", "SHA-256", "SHA-512-256"}, []string{"auth", "auth-int"}, "SHA-512-256", "auth", false},
		{"md5-sha256", []string{"MD5", "SHA-256"}, []string{"auth"}, "SHA-256", "auth", false},
		{"auth-int", []string{"MD5", "SHA-256"}, []string{"auth-int"}, "SHA-256", "auth-int", false},
		{"md5-only", []string{"MD5"}, []string{"auth"}, "MD5", "auth", false},
		{"ha1-sha256", []string{"MD5", "SHA-256"}, []string{"auth"}, "SHA-256", "auth", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := digest.NewServer(digest.ServerOptions{Realm: "sipua.test", Algorithms: tc.algs, QOP: tc.qop,
				Lookup: func(u string) (digest.Credentials, bool) {
					return digest.Credentials{Password: password}, u == "bob"
				}})
			require.NoError(t, err)
			reg := newDigestRegistrar(t, ds)
			logs := &syncBuffer{}
			opts := UserAgentOptions{URI: "sip:bob@sipua.test", AuthorizationPassword: password}
			if tc.ha1 {
				opts.AuthorizationPassword = ""
				opts.AuthorizationHA1 = func(realm, alg string) (string, error) {
					h := map[string]hash.Hash{"MD5": md5.New(), "SHA-256": sha256.New(), "SHA-512-256": sha512.New512_256()}[alg]
					return hexHash(h, "bob:"+realm+":"+password), nil
				}
			}
			ua, err := NewUserAgent(UserAgentOptions{URI: opts.URI, AuthorizationPassword: opts.AuthorizationPassword,
				AuthorizationHA1: opts.AuthorizationHA1, MediaFactory: NoMedia,
				Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
				Transport: TransportOptions{Server: "sip:" + reg.conn.LocalAddr().String()}})
			require.NoError(t, err)
			require.NoError(t, ua.Start(ctx5(t)))
			t.Cleanup(func() { _ = ua.Stop(context.Background()) })
			r, err := NewRegisterer(ua, RegistererOptions{})
			require.NoError(t, err)
			require.NoError(t, r.Register(ctx5(t), RegisterOptions{}))
			require.NoError(t, r.Unregister(ctx5(t), UnregisterOptions{}))
			require.NoError(t, ua.Stop(ctx5(t)))

			auths := reg.authorizations()
			require.NotEmpty(t, auths)
			var responses []string
			for _, a := range auths {
				params := map[string]string{}
				for p := range strings.SplitSeq(strings.TrimPrefix(a, "Digest "), ",") {
					k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
					params[strings.ToLower(k)] = strings.Trim(v, `"`)
				}
				alg := params["algorithm"]
				if alg == "" {
					alg = "MD5"
				}
				assert.Equal(t, tc.wantAlg, alg, a)
				assert.Equal(t, tc.wantQOP, params["qop"], a)
				responses = append(responses, params["response"])
			}
			secrets := append([]string{password,
				hexHash(md5.New(), "bob:sipua.test:"+password),
				hexHash(sha256.New(), "bob:sipua.test:"+password),
				hexHash(sha512.New512_256(), "bob:sipua.test:"+password),
			}, responses...)
			out := logs.String()
			require.NotEmpty(t, out, "the debug log is written")
			for _, s := range secrets {
				require.NotEmpty(t, s)
				assert.NotContains(t, out, s, "a secret in the debug log")
				assert.NotContains(t, strings.ToLower(out), strings.ToLower(s))
			}
		})
	}
}
