package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	sip "github.com/sipua/sip"
	"github.com/sipua/sip/media"
)

// Stats is what a process under test reports about itself.
type Stats struct {
	CPUMicros   int64  `json:"cpu_us"`     // user + system, getrusage(RUSAGE_SELF)
	RSSKiB      int64  `json:"rss_kib"`    // resident now (/proc/self/statm)
	MaxRSSKiB   int64  `json:"maxrss_kib"` // peak resident (getrusage)
	HeapLive    uint64 `json:"heap_live"`  // runtime HeapAlloc (after a GC when asked)
	HeapInuse   uint64 `json:"heap_inuse"`
	Goroutines  int    `json:"goroutines"`
	Active      int64  `json:"active"`      // calls established now (ACK seen, no BYE yet)
	Established int64  `json:"established"` // calls established so far
	Ended       int64  `json:"ended"`       // calls ended by BYE so far
}

// counters are the UAS's call counts, updated from its callbacks.
type counters struct {
	active, established, ended atomic.Int64
}

func readStats(c *counters, gc bool) Stats {
	if gc {
		runtime.GC()
		runtime.GC()
	}
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Stats{
		CPUMicros:  ru.Utime.Sec*1e6 + ru.Utime.Usec + ru.Stime.Sec*1e6 + ru.Stime.Usec,
		MaxRSSKiB:  ru.Maxrss,
		HeapLive:   ms.HeapAlloc,
		HeapInuse:  ms.HeapInuse,
		Goroutines: runtime.NumGoroutine(),
		RSSKiB:     rssKiB(),
	}
	if c != nil {
		s.Active = c.active.Load()
		s.Established = c.established.Load()
		s.Ended = c.ended.Load()
	}
	return s
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize()) / 1024
}

// serveStats answers the driver on stdin/stdout: "stats" or "gc" (stats
// after a forced GC) print one JSON line, "heap PATH" writes a heap
// profile and prints the stats; "quit" or EOF ends the process.
func serveStats(c *counters, in io.Reader, out io.Writer) {
	sc := bufio.NewScanner(in)
	enc := json.NewEncoder(out)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "heap "); ok {
			// A heap profile now (after a GC), for pprof.
			runtime.GC()
			if f, err := os.Create(p); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
			_ = enc.Encode(readStats(c, false))
			continue
		}
		switch line {
		case "stats":
			_ = enc.Encode(readStats(c, false))
		case "gc":
			_ = enc.Encode(readStats(c, true))
		case "quit":
			return
		}
	}
}

// bigBufferUDP opens a UDP socket with a 4 MiB receive buffer (forced
// past rmem_max when the process may; Linux reports twice that): loopback
// UDP drops datagrams at the default size long before the CPU is busy.
// It is what sipua's transport sets on its own sockets (UDPConfig
// defaults), so both stacks get the same.
func bigBufferUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(1 << 20)
	if rc, err := c.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 4<<20)
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, 1<<20)
		})
	}
	return c, nil
}

// fixedAnswer is a media handler that answers any offer with one fixed
// SDP and carries no media: sip.NoMedia refuses an SDP offer with 488
// (RFC 3264: no 2xx without an answer). sipgo's UAS below answers 200
// with no body, which costs it slightly less than this answer costs us.
type fixedAnswer struct{}

var fixedSDP = []byte("v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")

func (fixedAnswer) GetDescription(context.Context, media.Options) (media.Description, error) {
	return media.Description{ContentType: "application/sdp", Body: fixedSDP}, nil
}
func (fixedAnswer) SetDescription(context.Context, media.Description, media.Options) error {
	return nil
}
func (fixedAnswer) HasDescription(ct string) bool        { return ct == "application/sdp" }
func (fixedAnswer) SendDTMF(string, time.Duration) error { return media.ErrNotSupported }
func (fixedAnswer) Close() error                         { return nil }

// runSipuaUAS answers every INVITE with 200 (a fixed SDP answer, no
// media) and counts calls through the session's state listener.
func runSipuaUAS(addr string, c *counters) error {
	ua, err := sip.NewUserAgent(sip.UserAgentOptions{
		URI:          "sip:uas@" + addr,
		MediaFactory: func(media.SessionInfo) (media.Handler, error) { return fixedAnswer{}, nil },
		// The defaults (16384 server transactions, 64 calls waiting for
		// the application) protect a phone; this UAS is a server under
		// load test: at 1000 calls/s the INVITE and BYE transactions kept
		// 32 s for retransmissions (Timers L and J) alone are 64 000.
		// sipgo has no such caps.
		Limits: sip.Limits{MaxServerTransactions: -1, MaxPendingInvites: -1},
		Transport: sip.TransportOptions{
			Listen: []string{"udp://" + addr},
			ListenPacket: func(ctx context.Context, network, address string) (net.PacketConn, error) {
				return bigBufferUDP(address)
			},
		},
		Delegate: sip.UserAgentDelegate{
			OnInvite: func(inv *sip.Invitation) {
				inv.OnStateChange(func(st sip.SessionState) {
					switch st {
					case sip.SessionEstablished:
						c.established.Add(1)
						c.active.Add(1)
					case sip.SessionTerminated:
						if inv.EndReason().Cause == sip.EndRemoteBye {
							c.active.Add(-1)
							c.ended.Add(1)
						}
					}
				})
				_ = inv.Accept(context.Background(), sip.AcceptOptions{})
			},
		},
	})
	if err != nil {
		return err
	}
	if err := ua.Start(context.Background()); err != nil {
		return err
	}
	fmt.Println("ready")
	serveStats(c, os.Stdin, os.Stdout)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ua.Stop(ctx)
	return nil
}

// runSipgoUAS is sipgo's documented UAS with its dialog layer on
// (DialogServerCache): 200 to every INVITE, the handler waits for the
// dialog to end.
func runSipgoUAS(addr string, c *counters) error {
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	// sipgo logs through slog's default logger: keep it for errors only.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("sipgo"), sipgo.WithUserAgentHostname(host))
	if err != nil {
		return err
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		return err
	}
	client, err := sipgo.NewClient(ua)
	if err != nil {
		return err
	}
	contact := sipgosip.ContactHeader{Address: sipgosip.Uri{User: "uas", Host: host, Port: port}}
	dialogs := sipgo.NewDialogServerCache(client, contact)
	srv.OnInvite(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		dlg, err := dialogs.ReadInvite(req, tx)
		if err != nil {
			return
		}
		defer dlg.Close()
		if err := dlg.Respond(sipgosip.StatusOK, "OK", nil); err != nil {
			return
		}
		<-dlg.Context().Done()
	})
	srv.OnAck(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if dialogs.ReadAck(req, tx) == nil {
			c.established.Add(1)
			c.active.Add(1)
		}
	})
	srv.OnBye(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if dialogs.ReadBye(req, tx) == nil {
			c.active.Add(-1)
			c.ended.Add(1)
		}
	})
	conn, err := bigBufferUDP(addr)
	if err != nil {
		return err
	}
	go func() { _ = srv.ServeUDP(conn) }()
	fmt.Println("ready")
	serveStats(c, os.Stdin, os.Stdout)
	_ = srv.Close()
	return nil
}
