package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sip "github.com/sipua/sip"
)

// RegResult is what the register client reports.
type RegResult struct {
	Mode            string // "stack": one sip.Stack for all accounts; "ua": a UserAgent (and socket) per account
	UAs, PerUA      int
	Registered      int     // registrations that succeeded at start
	SetupSeconds    float64 // time to register them all
	QuietSeconds    float64 // a window after setup in which no refresh falls due
	QuietCPUMicros  int64   // CPU used in it: the cost of holding the registrations
	WindowSeconds   float64 // the refresh window
	WindowCPUMicros int64   // CPU used in the window
	WindowRegisters int64   // REGISTERs sent in the window (counted on the sockets)
	// Period is set when the window is one whole refresh period that
	// starts at the end of setup (regclient -period): every registration
	// refreshes exactly once in it, and the quiet time is inside it, so
	// the window's CPU is the steady-state cost.
	Period     bool
	Expires    int
	Auth       bool // the registrar challenged with digest
	Goroutines int
	HeapLive   uint64 // HeapAlloc after GC, all registered
	HeapInuse  uint64 // HeapInuse after GC
	RSSKiB     int64
	Failed     int64 // Registerer state changes to Unregistered during the run
}

// regOptions are the register client's settings (regclient's flags).
type regOptions struct {
	server   string // registrar host:port (UDP)
	mode     string // "stack" or "ua"
	uas, per int
	expires  int
	rate     int // initial registrations per second
	burst    int // registrations started at once (1: evenly spread)
	window   time.Duration
	period   bool // measure over one refresh period from the end of setup
	password string
}

// countingConn counts the REGISTER requests written to it.
type countingConn struct {
	net.PacketConn
	n *atomic.Int64
}

func (c countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if bytes.HasPrefix(p, []byte("REGISTER ")) {
		c.n.Add(1)
	}
	return c.PacketConn.WriteTo(p, addr)
}

// listenCounting is a TransportOptions.ListenPacket that opens a UDP
// socket with a 4 MiB receive buffer and counts the REGISTERs sent on it.
func listenCounting(sent *atomic.Int64) func(ctx context.Context, network, address string) (net.PacketConn, error) {
	return func(ctx context.Context, network, address string) (net.PacketConn, error) {
		var lc net.ListenConfig
		pc, err := lc.ListenPacket(ctx, network, address)
		if err != nil {
			return nil, err
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(4 << 20) // the transport sets none on a wrapped conn
		}
		return countingConn{pc, sent}, nil
	}
}

// runRegClient makes o.uas accounts with o.per Registerers each against
// o.server (UDP), all on one sip.Stack (mode "stack") or each a UserAgent
// with a socket of its own (mode "ua", as before the Stack), registers
// them at o.rate per second, then measures the process's CPU in a quiet
// window (no refresh due) and over a window while they keep their
// registrations fresh.
func runRegClient(o regOptions) error {
	ctx := context.Background()
	o.burst = max(o.burst, 1)
	res := RegResult{Mode: o.mode, UAs: o.uas, PerUA: o.per, Expires: o.expires, Auth: o.password != ""}
	user := ""
	if o.password != "" {
		user = "load" // one account name for the sipp registrar's verifyauth
	}
	var failed, sent atomic.Int64
	tr := sip.TransportOptions{
		Server: "sip:" + o.server,
		// No OPTIONS keepalive: the registrar scenario answers
		// REGISTER only, and what is measured is the refreshes.
		KeepaliveInterval: -1,
		ListenPacket:      listenCounting(&sent),
	}
	newUA := func(opts sip.UserAgentOptions) (*sip.UserAgent, error) {
		opts.Transport = tr
		return sip.NewUserAgent(opts)
	}
	switch o.mode {
	case "stack":
		st, err := sip.NewStack(sip.StackOptions{Transport: tr})
		if err != nil {
			return err
		}
		if err := st.Start(ctx); err != nil {
			return fmt.Errorf("start stack: %w", err)
		}
		newUA = st.NewUserAgent
	case "ua":
	default:
		return fmt.Errorf("unknown mode %q (stack or ua)", o.mode)
	}
	var regs []*sip.Registerer
	var agents []*sip.UserAgent
	for i := 0; i < o.uas; i++ {
		ua, err := newUA(sip.UserAgentOptions{
			URI:                   "sip:user" + strconv.Itoa(i) + "@127.0.0.1",
			MediaFactory:          sip.NoMedia,
			AuthorizationUsername: user,
			AuthorizationPassword: o.password,
		})
		if err != nil {
			return err
		}
		if err := ua.Start(ctx); err != nil {
			return fmt.Errorf("start UA %d: %w", i, err)
		}
		agents = append(agents, ua)
		for j := 0; j < o.per; j++ {
			r, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: uint32(o.expires)})
			if err != nil {
				return err
			}
			r.OnStateChange(func(st sip.RegistererState) {
				if st == sip.Unregistered {
					failed.Add(1)
				}
			})
			regs = append(regs, r)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	var ok atomic.Int64
	sem := make(chan struct{}, 256)
	for i, r := range regs {
		// Spread the registrations (and so their refreshes) evenly, or
		// in bursts of o.burst.
		time.Sleep(time.Until(start.Add(time.Duration(i/o.burst*o.burst) * time.Second / time.Duration(o.rate))))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, cancel := context.WithTimeout(ctx, 40*time.Second)
			defer cancel()
			if r.Register(c, sip.RegisterOptions{}) == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	res.Registered = int(ok.Load())
	res.SetupSeconds = time.Since(start).Seconds()
	runtime.GC()
	// The first refresh falls due 90% of expires
	// (RegistererOptions.RefreshFraction) after the first registration,
	// leaving at least 5 s (or half the lifetime): until then the process
	// only holds its registrations.
	left := max(0.1*float64(o.expires), min(5, float64(o.expires)/2))
	period := time.Duration((float64(o.expires) - left) * float64(time.Second))
	firstRefresh := start.Add(period - time.Second)
	window := o.window
	if o.period {
		// Registration i, made at c_i in [start, now], refreshes at
		// c_i + period: all of them in [now, now + period], once each
		// (when setup took less than a period).
		res.Period = true
		window = period + 500*time.Millisecond
	}
	var s0 Stats
	var n0 int64
	var t0 time.Time
	mark := func() { s0, n0, t0 = readStats(nil, false), sent.Load(), time.Now() }
	if o.period {
		mark()
	}
	if quiet := min(time.Until(firstRefresh), window); quiet >= 3*time.Second {
		q0 := readStats(nil, false)
		t := time.Now()
		time.Sleep(quiet)
		res.QuietCPUMicros = readStats(nil, false).CPUMicros - q0.CPUMicros
		res.QuietSeconds = time.Since(t).Seconds()
	}
	if p := os.Getenv("SIPLOAD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p + ".regclient"); err == nil {
			_ = pprof.StartCPUProfile(f)
		}
	}
	if !o.period {
		mark()
	}
	time.Sleep(time.Until(t0.Add(window)))
	s1 := readStats(nil, false)
	res.WindowRegisters = sent.Load() - n0
	pprof.StopCPUProfile()
	res.WindowSeconds = time.Since(t0).Seconds()
	res.WindowCPUMicros = s1.CPUMicros - s0.CPUMicros
	s2 := readStats(nil, true)
	res.Goroutines, res.HeapLive, res.HeapInuse, res.RSSKiB = s2.Goroutines, s2.HeapLive, s2.HeapInuse, s2.RSSKiB
	res.Failed = failed.Load()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return err
	}
	// Leave without unregistering: the registrar is stopped next.
	runtime.KeepAlive(agents)
	return nil
}
