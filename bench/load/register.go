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
	UAs, PerUA      int
	Registered      int     // registrations that succeeded at start
	SetupSeconds    float64 // time to register them all
	QuietSeconds    float64 // a window after setup in which no refresh falls due
	QuietCPUMicros  int64   // CPU used in it: the cost of holding the registrations
	WindowSeconds   float64 // the refresh window: every registration refreshes once in it
	WindowCPUMicros int64   // CPU used in the window
	WindowRegisters int64   // REGISTERs sent in the window (counted on the sockets)
	Expires         int
	Auth            bool // the registrar challenged with digest
	Goroutines      int
	HeapLive        uint64 // after GC, all registered
	RSSKiB          int64
	Failed          int64 // Registerer state changes to Unregistered during the run
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

// runRegClient starts uas UserAgents with per Registerers each against
// server (UDP), registers them at rate per second, then measures the
// process's CPU in a quiet window (no refresh due) and over window while
// they keep their registrations fresh.
func runRegClient(server string, uas, per, expires, rate int, window time.Duration, password string) error {
	ctx := context.Background()
	res := RegResult{UAs: uas, PerUA: per, Expires: expires, Auth: password != ""}
	user := ""
	if password != "" {
		user = "load" // one account name for the sipp registrar's verifyauth
	}
	var failed, sent atomic.Int64
	var regs []*sip.Registerer
	var agents []*sip.UserAgent
	for i := 0; i < uas; i++ {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:                   "sip:user" + strconv.Itoa(i) + "@127.0.0.1",
			MediaFactory:          sip.NoMedia,
			AuthorizationUsername: user,
			AuthorizationPassword: password,
			Transport: sip.TransportOptions{
				Server: "sip:" + server,
				// No OPTIONS keepalive: the registrar scenario answers
				// REGISTER only, and what is measured is the refreshes.
				KeepaliveInterval: -1,
				ListenPacket: func(ctx context.Context, network, address string) (net.PacketConn, error) {
					var lc net.ListenConfig
					pc, err := lc.ListenPacket(ctx, network, address)
					if err != nil {
						return nil, err
					}
					if uc, ok := pc.(*net.UDPConn); ok {
						_ = uc.SetReadBuffer(1 << 20) // the transport sets none on a wrapped conn
					}
					return countingConn{pc, &sent}, nil
				},
			},
		})
		if err != nil {
			return err
		}
		if err := ua.Start(ctx); err != nil {
			return fmt.Errorf("start UA %d: %w", i, err)
		}
		agents = append(agents, ua)
		for j := 0; j < per; j++ {
			r, err := sip.NewRegisterer(ua, sip.RegistererOptions{Expires: uint32(expires)})
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
		// Spread the registrations (and so their refreshes) evenly.
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
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
	left := max(0.1*float64(expires), min(5, float64(expires)/2))
	firstRefresh := start.Add(time.Duration((float64(expires)-left)*float64(time.Second)) - time.Second)
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
	s0 := readStats(nil, false)
	n0 := sent.Load()
	t0 := time.Now()
	time.Sleep(window)
	s1 := readStats(nil, false)
	res.WindowRegisters = sent.Load() - n0
	pprof.StopCPUProfile()
	res.WindowSeconds = time.Since(t0).Seconds()
	res.WindowCPUMicros = s1.CPUMicros - s0.CPUMicros
	s2 := readStats(nil, true)
	res.Goroutines, res.HeapLive, res.RSSKiB = s2.Goroutines, s2.HeapLive, s2.RSSKiB
	res.Failed = failed.Load()
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return err
	}
	// Leave without unregistering: the registrar is stopped next.
	return nil
}
