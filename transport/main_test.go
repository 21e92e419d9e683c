package transport

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sipua/sip/message"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCA is a self-signed CA certificate that is also the server
// certificate for 127.0.0.1, ::1 and localhost.
type testCA struct {
	cert tls.Certificate
	pool *x509.CertPool
}

var (
	caOnce sync.Once
	ca     testCA
)

func getCA(t testing.TB) testCA {
	t.Helper()
	caOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "sipua test CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			DNSNames:              []string{"localhost", "sipua.test"},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			panic(err)
		}
		ca.pool = x509.NewCertPool()
		ca.pool.AddCert(c)
		ca.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}
	})
	return ca
}

func serverTLS(t testing.TB) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{getCA(t).cert}, MinVersion: tls.VersionTLS12}
}

func clientTLS(t testing.TB) *tls.Config {
	return &tls.Config{RootCAs: getCA(t).pool, MinVersion: tls.VersionTLS12}
}

// inbox collects what a Transport delivers.
type inbox struct {
	msgs  chan Incoming
	conns chan ConnEvent
}

func newInbox() *inbox {
	return &inbox{msgs: make(chan Incoming, 1024), conns: make(chan ConnEvent, 1024)}
}

func (b *inbox) config(c Config) Config {
	c.OnMessage = func(in Incoming) { b.msgs <- in }
	c.OnConn = func(e ConnEvent) { b.conns <- e }
	return c
}

func (b *inbox) msg(t testing.TB) Incoming {
	t.Helper()
	select {
	case in := <-b.msgs:
		return in
	case <-time.After(10 * time.Second):
		t.Fatal("no message received")
		return Incoming{}
	}
}

func (b *inbox) conn(t testing.TB, state ConnState) ConnEvent {
	t.Helper()
	for {
		select {
		case e := <-b.conns:
			if e.State == state {
				return e
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no connection event %v", state)
			return ConnEvent{}
		}
	}
}

// connOf waits for the event state of the connection whose remote
// address is remote.
func (b *inbox) connOf(t testing.TB, state ConnState, remote net.Addr) ConnEvent {
	t.Helper()
	want := addrPortOf(remote)
	for {
		select {
		case e := <-b.conns:
			if e.State == state && e.Flow.Remote == want {
				return e
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no connection event %v from %v", state, want)
			return ConnEvent{}
		}
	}
}

// limitsSmall caps messages at 4 KiB.
var limitsSmall = message.Limits{MaxMessageSize: 4096}

func testRequest(method string) *message.Request {
	from, _ := message.ParseAddress("<sip:alice@sipua.test>")
	to, _ := message.ParseAddress("<sip:bob@sipua.test>")
	r := message.NewRequest(method, message.MustParseURI("sip:bob@sipua.test"), from, to)
	r.Header.Add("Via", "SIP/2.0/UDP placeholder.invalid;branch="+message.NewBranch())
	return r
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeDNS answers from maps.
type fakeDNS struct {
	srv   map[string][]*net.SRV // "_sip._udp.example.com"
	hosts map[string][]netip.Addr
}

func (d fakeDNS) LookupSRV(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
	key := "_" + service + "._" + proto + "." + name
	if r, ok := d.srv[key]; ok {
		return key, r, nil
	}
	return "", nil, &net.DNSError{Err: "no such host", Name: key, IsNotFound: true}
}

func (d fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if r, ok := d.hosts[host]; ok {
		return r, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
