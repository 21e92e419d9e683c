package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
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
	WindowSeconds   float64 // length of the CPU measurement
	WindowCPUMicros int64   // CPU used in the window
	Expires         int
	Goroutines      int
	HeapLive        uint64 // after GC, all registered
	RSSKiB          int64
	Failed          int64 // Registerer state changes to Unregistered during the run
}

// runRegClient starts uas UserAgents with per Registerers each against
// server (UDP), registers them at rate per second, then measures the
// process's CPU over window while they keep their registrations fresh.
func runRegClient(server string, uas, per, expires, rate int, window time.Duration) error {
	ctx := context.Background()
	res := RegResult{UAs: uas, PerUA: per, Expires: expires}
	var failed atomic.Int64
	var regs []*sip.Registerer
	var agents []*sip.UserAgent
	for i := 0; i < uas; i++ {
		ua, err := sip.NewUserAgent(sip.UserAgentOptions{
			URI:          "sip:user" + strconv.Itoa(i) + "@127.0.0.1",
			MediaFactory: sip.NoMedia,
			Transport: sip.TransportOptions{
				Server: "sip:" + server,
				// No OPTIONS keepalive: the registrar scenario answers
				// REGISTER only, and what is measured is the refreshes.
				KeepaliveInterval: -1,
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
	tick := time.NewTicker(time.Second / time.Duration(rate))
	sem := make(chan struct{}, 256)
	for _, r := range regs {
		<-tick.C
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
	tick.Stop()
	wg.Wait()
	res.Registered = int(ok.Load())
	res.SetupSeconds = time.Since(start).Seconds()
	runtime.GC()
	s0 := readStats(nil, false)
	t0 := time.Now()
	time.Sleep(window)
	s1 := readStats(nil, false)
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
