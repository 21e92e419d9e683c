package interop

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sipua/sip/transport"
)

// Domain is the SIP domain Kamailio serves; Users maps its test users to
// their passwords.
const Domain = "sipua.test"

// Users are the test users of the Kamailio configuration (realm Domain) and
// their passwords; kamailio/kamailio.cfg knows the same ones. Tests only
// read it.
var Users = map[string]string{
	"alice": "alice-secret",
	"bob":   "bob-secret",
	"carol": "carol-secret",
	"dave":  "dave-secret",
	"eve":   "eve-secret",
}

// RouteSetMarker starts the line Kamailio logs (and the reason phrase of
// its 403 is "Route set ignored") when an in-dialog request reaches it
// without a Route header naming it, i.e. its sender ignored the
// Record-Route set.
const RouteSetMarker = "ROUTE-SET-IGNORED"

// Kamailio is a running Kamailio started by StartKamailio.
type Kamailio struct {
	// SIPPort is the UDP and TCP port; TLSPort, WSPort and WSSPort the
	// others. All listen on 127.0.0.1.
	SIPPort, TLSPort, WSPort, WSSPort uint16
	// CertPool holds the self-signed certificate Kamailio presents on TLS
	// and WSS (valid for 127.0.0.1, localhost and sipua.test).
	CertPool *x509.CertPool
	// Dir is the temporary directory with the configuration, certificate,
	// PID file and log.
	Dir string

	cmd     *exec.Cmd
	log     *lockedBuffer
	done    chan struct{}
	bin     string
	pidFile string
}

// Target returns the target for proto on this Kamailio.
func (k *Kamailio) Target(proto transport.Proto) transport.Target {
	port := map[transport.Proto]uint16{
		transport.UDP: k.SIPPort, transport.TCP: k.SIPPort, transport.TLS: k.TLSPort,
		transport.WS: k.WSPort, transport.WSS: k.WSSPort,
	}[proto]
	return transport.Target{Proto: proto, Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
}

// Log returns what Kamailio has written so far.
func (k *Kamailio) Log() string { return k.log.String() }

// RouteSetViolations returns the log lines of the strict route-set check
// (RouteSetMarker): one per in-dialog request that arrived without a Route
// to Kamailio. A test whose peers behave expects none.
func (k *Kamailio) RouteSetViolations() []string {
	var out []string
	for _, line := range strings.Split(k.Log(), "\n") {
		if i := strings.Index(line, RouteSetMarker+":"); i >= 0 {
			out = append(out, line[i:])
		}
	}
	return out
}

// WaitLog waits up to timeout for substr to appear in Kamailio's log (its
// stderr reaches the test shortly after the SIP messages it logs about)
// and reports whether it did.
func (k *Kamailio) WaitLog(substr string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(k.Log(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WSURL returns the ws:// URL of Kamailio's WebSocket listener.
func (k *Kamailio) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d/", k.WSPort) }

// WSSURL returns the wss:// URL of Kamailio's secure WebSocket listener.
func (k *Kamailio) WSSURL() string { return fmt.Sprintf("wss://127.0.0.1:%d/", k.WSSPort) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartKamailio starts Kamailio with the configuration in kamailio/ (read
// relative to the package directory, as go test runs there) and stops it
// when the test ends. It fails the test, with the reason and Kamailio's
// log, when Kamailio is not installed or does not come up.
func StartKamailio(t testing.TB) *Kamailio {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		t.Fatalf("kamailio is not installed (%v): run interop/install.sh as root "+
			"(scripts/test.sh does), or apt-get install kamailio kamailio-websocket-modules kamailio-tls-modules", err)
	}
	dir := t.TempDir()
	pool, err := writeCert(dir)
	if err != nil {
		t.Fatalf("kamailio: certificate: %v", err)
	}
	k := &Kamailio{CertPool: pool, Dir: dir, log: &lockedBuffer{}, done: make(chan struct{})}
	ports, err := freePorts(4)
	if err != nil {
		t.Fatalf("kamailio: free ports: %v", err)
	}
	k.SIPPort, k.TLSPort, k.WSPort, k.WSSPort = ports[0], ports[1], ports[2], ports[3]
	repl := strings.NewReplacer(
		"@TMPDIR@", dir,
		"@SIP_PORT@", strconv.Itoa(int(k.SIPPort)),
		"@TLS_PORT@", strconv.Itoa(int(k.TLSPort)),
		"@WS_PORT@", strconv.Itoa(int(k.WSPort)),
		"@WSS_PORT@", strconv.Itoa(int(k.WSSPort)),
	)
	for _, name := range []string{"kamailio.cfg", "tls.cfg"} {
		tmpl, err := os.ReadFile(filepath.Join("kamailio", name))
		if err != nil {
			t.Fatalf("kamailio: template: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(repl.Replace(string(tmpl))), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k.bin = bin
	k.pidFile = filepath.Join(dir, "kamailio.pid")
	k.launch(t)
	t.Cleanup(func() {
		k.stop(t, k.pidFile)
		if t.Failed() {
			t.Logf("kamailio log (%s):\n%s", dir, k.Log())
		}
	})
	return k
}

// launch starts the Kamailio process and waits until it answers.
func (k *Kamailio) launch(t testing.TB) {
	t.Helper()
	k.done = make(chan struct{})
	k.cmd = exec.Command(k.bin, "-f", filepath.Join(k.Dir, "kamailio.cfg"), "-DD", "-E",
		"-P", k.pidFile, "-Y", k.Dir, "-w", k.Dir, "-m", "64", "-M", "8")
	k.cmd.Stdout, k.cmd.Stderr = k.log, k.log
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("kamailio: start: %v", err)
	}
	done, cmd := k.done, k.cmd
	go func() { _ = cmd.Wait(); close(done) }()
	if err := k.waitReady(k.pidFile, 15*time.Second); err != nil {
		t.Fatalf("kamailio did not come up: %v\n--- kamailio log ---\n%s", err, k.Log())
	}
}

// Stop stops Kamailio (by its PID) as a crash or an outage would; Start
// brings it back on the same ports. Its registrations are lost.
func (k *Kamailio) Stop(t testing.TB) {
	t.Helper()
	k.stop(t, k.pidFile)
	_ = os.Remove(k.pidFile)
}

// Start starts Kamailio again after Stop, on the same ports.
func (k *Kamailio) Start(t testing.TB) {
	t.Helper()
	k.launch(t)
}

// waitReady waits until the PID file exists and every TCP port accepts.
func (k *Kamailio) waitReady(pidFile string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-k.done:
			return fmt.Errorf("kamailio exited: %v", k.cmd.ProcessState)
		default:
		}
		ready := true
		if _, err := os.Stat(pidFile); err != nil {
			ready = false
		}
		for _, p := range []uint16{k.SIPPort, k.TLSPort, k.WSPort, k.WSSPort} {
			if !ready {
				break
			}
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))), time.Second)
			if err != nil {
				ready = false
				break
			}
			c.Close()
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("ports not answering after " + limit.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM to the PID in the PID file (Kamailio's main process,
// which stops its children), then kills the process group if it lingers.
func (k *Kamailio) stop(t testing.TB, pidFile string) {
	select {
	case <-k.done:
		return // already stopped
	default:
	}
	pid := k.cmd.Process.Pid
	if b, err := os.ReadFile(pidFile); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 {
			pid = p
		}
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		t.Logf("kamailio (pid %d) ignored SIGTERM; killing its process group", pid)
		_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
		<-k.done
	}
	// Children of the main process share its process group; none should
	// survive it, but make sure.
	_ = syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
}

// Ports for Kamailio and the peers are picked below Linux's default
// ephemeral range (32768-60999): a port the kernel hands to another
// process's bind to port 0, or to an outgoing connection, between our check
// and the peer's own bind would make the peer fail to start, and tests in
// other packages run at the same time.
const portLow, portHigh = 20000, 32000

// freePorts returns n distinct ports free on 127.0.0.1 for TCP and UDP.
func freePorts(n int) ([]uint16, error) {
	var out []uint16
	var hold []io.Closer
	defer func() {
		for _, c := range hold {
			c.Close()
		}
	}()
	for tries := 0; len(out) < n && tries < 500; tries++ {
		port := portLow + mrand.IntN(portHigh-portLow)
		if slices.Contains(out, uint16(port)) {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			l.Close()
			continue
		}
		hold = append(hold, l, u)
		out = append(out, uint16(port))
	}
	if len(out) < n {
		return nil, errors.New("not enough free ports")
	}
	return out, nil
}

// writeCert writes a self-signed certificate and key for 127.0.0.1,
// localhost and sipua.test into dir and returns a pool trusting it.
func writeCert(dir string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "sipua interop Kamailio"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:              []string{"localhost", Domain},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return pool, nil
}
