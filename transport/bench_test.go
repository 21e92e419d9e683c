package transport

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// benchThroughput sends b.N requests from one Transport to another over
// proto on loopback, with at most 256 in flight (a lost UDP datagram frees
// its slot after a second), and reports messages per second.
func benchThroughput(b *testing.B, proto Proto) { benchThroughputCfg(b, proto, UDPConfig{}) }

func benchThroughputCfg(b *testing.B, proto Proto, udp UDPConfig) {
	const window = 256
	slots := make(chan struct{}, window)
	srv := New(Config{
		UDP:             udp,
		ServerTLSConfig: serverTLS(b),
		OnMessage: func(in Incoming) {
			if in.Err == nil {
				<-slots
			}
		},
	})
	defer srv.Close()
	ctx := context.Background()
	addr, err := srv.Listen(ctx, proto, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cli := New(Config{TLSConfig: clientTLS(b)})
	defer cli.Close()
	if proto == UDP {
		if _, err := cli.Listen(ctx, UDP, "127.0.0.1:0"); err != nil {
			b.Fatal(err)
		}
	}
	target := Target{Proto: proto, Addr: addr}
	req := testRequest("MESSAGE")
	req.Body = []byte("hello, a short instant message body of moderate size")
	req.Header.Set("Content-Type", "text/plain")
	f, err := cli.SendRequest(ctx, req, target) // warm up: connect, fix Via
	if err != nil {
		b.Fatal(err)
	}
	slots <- struct{}{}
	target = f.Target()
	lost := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		select {
		case slots <- struct{}{}:
		case <-time.After(time.Second):
			lost++
		}
		if _, err := cli.Send(ctx, req, target); err != nil {
			b.Fatal(err)
		}
	}
	for range window {
		select {
		case slots <- struct{}{}:
		case <-time.After(time.Second):
			lost++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if lost > 0 {
		b.ReportMetric(float64(lost), "lost")
	}
}

func BenchmarkUDP(b *testing.B) { benchThroughput(b, UDP) }

// BenchmarkUDPNoBatch is BenchmarkUDP with a receiver that reads one
// datagram per system call (UDPConfig.BatchSize 1).
func BenchmarkUDPNoBatch(b *testing.B) { benchThroughputCfg(b, UDP, UDPConfig{BatchSize: 1}) }
func BenchmarkTCP(b *testing.B)        { benchThroughput(b, TCP) }
func BenchmarkWS(b *testing.B)         { benchThroughput(b, WS) }
func BenchmarkWSS(b *testing.B)        { benchThroughput(b, WSS) }

// BenchmarkReceive is the work of a socket's reader per datagram, without
// the socket: parse and prepare (Via received and rport) one INVITE.
func BenchmarkReceive(b *testing.B) {
	data, err := os.ReadFile(filepath.Join("..", "message", "testdata", "bench", "invite.sip"))
	if err != nil {
		b.Fatal(err)
	}
	t := New(Config{})
	f := Flow{Proto: UDP, Local: netip.MustParseAddrPort("192.0.2.1:5060"), Remote: netip.MustParseAddrPort("192.0.2.9:5062")}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := t.cfg.Limits.Parse(data)
		in := t.incoming(data, m, err, f)
		if in.Err != nil {
			b.Fatal(in.Err)
		}
	}
}
