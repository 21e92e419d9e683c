// Command load measures sipua against sipgo v1.7.2 under real SIP load
// from sipp (UDP on 127.0.0.1), each UAS in its own process so that its
// CPU (getrusage), RSS and heap are its own:
//
//	load calls    sipp UAC -> UAS, INVITE/200/ACK/BYE/200 at rising rates
//	load idle     N concurrent established calls held, then ended: heap,
//	              goroutines, RSS per call; heap still held per finished call
//	load register many sipua Registerers in one process against a sipp
//	              registrar: CPU used to keep them refreshed
//	load all      all three, one table (what bench/run.sh runs)
//
// The uas and regclient subcommands are the processes under test; the
// driver starts them itself.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	exit := 0
	defer func() { os.Exit(exit) }()
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "uas":
		fs := flag.NewFlagSet("uas", flag.ExitOnError)
		stack := fs.String("stack", "sipua", "sipua, sipgo or floor (no SIP stack: see floor.go)")
		addr := fs.String("addr", "127.0.0.1:5060", "UDP address to listen on")
		cpuprofile := fs.String("cpuprofile", os.Getenv("SIPLOAD_CPUPROFILE"), "write a CPU profile of the UAS here (env SIPLOAD_CPUPROFILE)")
		memprofile := fs.String("memprofile", os.Getenv("SIPLOAD_MEMPROFILE"), "write a heap profile at exit here (env SIPLOAD_MEMPROFILE)")
		_ = fs.Parse(args)
		c := &counters{}
		if *cpuprofile != "" {
			f, perr := os.Create(*cpuprofile + "." + *stack)
			if perr == nil {
				_ = pprof.StartCPUProfile(f)
				defer pprof.StopCPUProfile()
			}
		}
		if *memprofile != "" {
			defer func() {
				if f, perr := os.Create(*memprofile + "." + *stack); perr == nil {
					_ = pprof.WriteHeapProfile(f)
					f.Close()
				}
			}()
		}
		switch *stack {
		case "sipua":
			err = runSipuaUAS(*addr, c)
		case "sipgo":
			err = runSipgoUAS(*addr, c)
		case "floor":
			err = runFloorUAS(*addr, c)
		default:
			err = fmt.Errorf("unknown stack %q", *stack)
		}
	case "regclient":
		fs := flag.NewFlagSet("regclient", flag.ExitOnError)
		var o regOptions
		fs.StringVar(&o.server, "server", "", "registrar host:port (UDP)")
		fs.StringVar(&o.mode, "mode", "stack", "stack: all accounts on one sip.Stack (one socket, one loop); ua: a UserAgent with its own socket per account")
		fs.IntVar(&o.uas, "uas", 10000, "accounts (UserAgents)")
		fs.IntVar(&o.per, "per", 1, "Registerers per account")
		fs.IntVar(&o.expires, "expires", 60, "registration lifetime asked for, s")
		fs.IntVar(&o.rate, "rate", 500, "initial registrations per second")
		fs.IntVar(&o.burst, "burst", 1, "registrations started at once, at the same average rate (1: evenly spread, so that the refreshes are too)")
		fs.DurationVar(&o.window, "window", 60*time.Second, "CPU measurement window")
		fs.BoolVar(&o.period, "period", false, "measure over one whole refresh period from the end of setup (every registration refreshes once in it; -window is ignored)")
		fs.StringVar(&o.password, "password", "", "digest password of user \"load\" (empty: no credentials)")
		_ = fs.Parse(args)
		err = runRegClient(o)
	case "calls", "idle", "register", "all", "floor":
		err = drive(cmd, args)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		exit = 1
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: load calls|idle|register|all|floor [flags]  (see -h of each; floor: the CPU per call of a Go UDP responder with no SIP stack, at each of -rates)")
	os.Exit(2)
}

type config struct {
	rates     []int
	step      int // after rates, step up by this until sipua breaks
	maxRate   int // but not past this
	twoFrom   int // rates from this one on are split over two sipp UACs (0: never)
	cpuRate   int // CPU per call is reported at this rate for both stacks
	duration  time.Duration
	runs      int
	idleN     int
	idleRate  int
	timerWait time.Duration
	regUAs    int
	regPer    int
	regExp    int
	regRate   int
	regWin    time.Duration
	regAuth   bool
	regMode   string
	regPeriod bool
	regBurst  int
	dir       string
	jsonOut   string
	micro     string
	only      string // run the ladder for this stack only
}

func drive(cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var c config
	rates := fs.String("rates", "250,500,1000,1500,2000,3000,4000,5000,6000", "call rates (calls/s) of the ladder")
	fs.IntVar(&c.step, "step", 2000, "after -rates, the ladder steps up by this many calls/s until sipua breaks (0: only -rates)")
	fs.IntVar(&c.maxRate, "max-rate", 60000, "highest rate the ladder tries")
	fs.IntVar(&c.twoFrom, "two-sipp-from", 8000, "from this rate on, two sipp UAC processes share the rate: one sipp runs short of CPU around 10 000 calls/s (0: always one)")
	fs.IntVar(&c.cpuRate, "cpu-rate", 8000, "rate at which the table gives both stacks' CPU per call; a stack that broke below it is run there once more for the figure (0: none)")
	fs.DurationVar(&c.duration, "duration", 4*time.Second, "length of one ladder step")
	fs.IntVar(&c.runs, "runs", 3, "runs per ladder step and stack (interleaved)")
	fs.IntVar(&c.idleN, "idle-calls", 10000, "concurrent calls held in the idle test")
	fs.IntVar(&c.idleRate, "idle-rate", 1000, "call rate that sets up the idle calls")
	fs.DurationVar(&c.timerWait, "timer-wait", 34*time.Second, "wait after the last BYE for transaction timers (64*T1 = 32 s) to expire")
	fs.IntVar(&c.regUAs, "reg-uas", 10000, "accounts (UserAgents) in the register test")
	fs.StringVar(&c.regMode, "reg-mode", "stack", "register test: stack (all accounts on one sip.Stack) or ua (a UserAgent with its own socket per account, as before the Stack)")
	fs.BoolVar(&c.regPeriod, "reg-period", false, "register test: measure CPU over one whole refresh period from the end of setup instead of -reg-window")
	fs.IntVar(&c.regPer, "reg-per", 1, "Registerers per UserAgent")
	fs.IntVar(&c.regExp, "reg-expires", 60, "registration lifetime, s (refresh after 90%)")
	fs.IntVar(&c.regRate, "reg-rate", 500, "initial REGISTERs per second")
	fs.IntVar(&c.regBurst, "reg-burst", 1, "registrations started at once, at the -reg-rate average (1: evenly spread, and so are the refreshes)")
	fs.DurationVar(&c.regWin, "reg-window", 60*time.Second, "CPU measurement window of the register test (at least one refresh period)")
	fs.BoolVar(&c.regAuth, "reg-auth", false, "the registrar challenges with digest (MD5, qop=auth): a client that reuses the nonce refreshes in one REGISTER")
	fs.StringVar(&c.dir, "dir", "", "directory for sipp traces and logs (default: a new temporary one)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the raw results as JSON to this file")
	fs.StringVar(&c.only, "only", "", "run the call ladder for this stack only (sipua or sipgo), e.g. to compare two builds of one")
	fs.StringVar(&c.micro, "micro", "", "output of the bench package's benchmarks (go test -bench . -benchmem -count N) to put in the table")
	_ = fs.Parse(args)
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			return fmt.Errorf("bad rate %q", r)
		}
		c.rates = append(c.rates, n)
	}
	if _, err := exec.LookPath("sipp"); err != nil {
		return fmt.Errorf("sipp is not installed (apt-get install sip-tester, or interop/install.sh): %w", err)
	}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "sipload")
		if err != nil {
			return err
		}
		c.dir = d
	}
	fmt.Fprintf(os.Stderr, "traces and logs in %s\n", c.dir)
	var rep report
	var err error
	if c.micro != "" {
		if rep.Micro, err = readMicro(c.micro); err != nil {
			return err
		}
	}
	if cmd == "floor" {
		// The Go floor (floor.go) at each of -rates, once: not a stack
		// under test, no report.
		for _, rate := range c.rates {
			st, err := callStep(c, "floor", rate, 0)
			if err != nil {
				return err
			}
			logStep(st)
		}
		return nil
	}
	if cmd == "calls" || cmd == "all" {
		if rep.Ladder, err = ladder(c); err != nil {
			return err
		}
	}
	if cmd == "idle" || cmd == "all" {
		if rep.Idle, err = idleBoth(c); err != nil {
			return err
		}
	}
	if cmd == "register" || cmd == "all" {
		r, err := registerTest(c)
		if err != nil {
			return err
		}
		rep.Register = &r
	}
	rep.print(os.Stdout)
	if rep.Ladder != nil {
		fmt.Println()
		rep.Ladder.printSteps(os.Stdout)
	}
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(c.jsonOut, b, 0o644)
	}
	return nil
}

var stacks = []string{"sipua", "sipgo"}

// Step is one ladder run of one stack at one rate.
type Step struct {
	Stack       string
	Rate        int
	Run         int
	Sipp        SippResult
	CPUMicros   int64   // UAS CPU during the run
	CPUPerCall  float64 // µs
	CPUPercent  float64 // of one core, over sipp's elapsed time
	RSSKiB      int64   // after the run
	HeapLive    uint64  // after the run and a forced GC (transactions still in their timers)
	Clean       bool
	AchievedCPS float64
	UACs        int     // sipp UAC processes
	SippCPU     float64 // their CPU together, % of one core over the run
}

func newDir(base, name string) (string, error) {
	d := filepath.Join(base, name)
	return d, os.MkdirAll(d, 0o755)
}

// callStep runs sipp's UAC at rate for c.duration against a fresh UAS.
func callStep(c config, stack string, rate, run int) (Step, error) {
	st := Step{Stack: stack, Rate: rate, Run: run}
	dir, err := newDir(c.dir, fmt.Sprintf("calls-%d-%s-%d", rate, stack, run))
	if err != nil {
		return st, err
	}
	u, err := startUAS(stack, dir)
	if err != nil {
		return st, err
	}
	defer u.close()
	uacs := 1
	if c.twoFrom > 0 && rate >= c.twoFrom {
		uacs = 2
	}
	st.UACs = uacs
	n := int(float64(rate) * c.duration.Seconds())
	s0, err := u.stats(false)
	if err != nil {
		return st, err
	}
	var sps []*Sipp
	for i := range uacs {
		sdir := dir
		if uacs > 1 {
			if sdir, err = newDir(dir, fmt.Sprintf("uac%d", i)); err != nil {
				return st, err
			}
		}
		scen, err := writeScenario(sdir, "uac.xml")
		if err != nil {
			return st, err
		}
		p, _ := freePort()
		mp, _ := freePort()
		r, m := rate/uacs, n/uacs
		sp, err := startSipp(sdir, "-sf", scen, u.addr, "-i", "127.0.0.1", "-p", strconv.Itoa(p), "-mp", strconv.Itoa(mp),
			"-s", "uas", "-r", strconv.Itoa(r), "-rp", "1000", "-m", strconv.Itoa(m), "-l", strconv.Itoa(m),
			"-d", "0", "-timeout", fmt.Sprintf("%ds", int(c.duration.Seconds())+30), "-timeout_error",
			"-max_recv_loops", "10000", "-max_sched_loops", "10000")
		if err != nil {
			for _, sp := range sps {
				sp.stop()
			}
			return st, err
		}
		sps = append(sps, sp)
	}
	for _, sp := range sps {
		_ = sp.wait(c.duration + 40*time.Second)
	}
	s1, err := u.stats(false)
	if err != nil {
		return st, err
	}
	s2, err := u.stats(true)
	if err != nil {
		return st, err
	}
	var sippCPU int64
	for _, sp := range sps {
		r, err := sp.result()
		if err != nil {
			return st, err
		}
		st.Sipp.add(r)
		sippCPU += sp.cpuMicros()
		if r.Elapsed > 0 {
			st.AchievedCPS += float64(r.Calls) / r.Elapsed
		}
	}
	st.CPUMicros = s1.CPUMicros - s0.CPUMicros
	if st.Sipp.Successful > 0 {
		st.CPUPerCall = float64(st.CPUMicros) / float64(st.Sipp.Successful)
	}
	if st.Sipp.Elapsed > 0 {
		st.CPUPercent = float64(st.CPUMicros) / (st.Sipp.Elapsed * 1e4)
		st.SippCPU = float64(sippCPU) / (st.Sipp.Elapsed * 1e4)
	}
	st.RSSKiB = s1.RSSKiB
	st.HeapLive = s2.HeapLive
	// Clean: every call done, nothing retransmitted, and sipp kept the
	// rate (a UAS too slow to answer makes sipp fall behind).
	st.Clean = st.Sipp.Clean() && st.AchievedCPS >= 0.9*float64(rate)
	return st, nil
}

// Ladder is the result of the call-rate ladder.
type Ladder struct {
	Steps     []Step
	CleanRate map[string]int // highest rate with a clean run, every lower rate too
	Broke     map[string]int // the first rate with no clean run (0: none within the ladder)
	CPURate   int            // the rate of CPUAt
	CPUAt     map[string]Step
}

// ladder runs c.rates, then steps up by c.step until sipua breaks (no
// clean run at a rate) or c.maxRate; each stack stops at its first
// broken step. Then, for c.cpuRate, each stack that was not run there
// runs there once more, for its CPU per call.
func ladder(c config) (*Ladder, error) {
	l := &Ladder{CleanRate: map[string]int{}, Broke: map[string]int{}, CPUAt: map[string]Step{}}
	failed := map[string]bool{}
	for _, s := range stacks {
		if c.only != "" && s != c.only {
			failed[s] = true
		}
	}
	rates := slices.Clone(c.rates)
	for i := 0; i < len(rates); i++ {
		rate := rates[i]
		if failed["sipua"] && failed["sipgo"] {
			break
		}
		anyClean := map[string]bool{}
		for run := 0; run < c.runs; run++ {
			order := stacks
			if run%2 == 1 {
				order = []string{stacks[1], stacks[0]}
			}
			for _, stack := range order {
				if failed[stack] {
					continue
				}
				st, err := callStep(c, stack, rate, run)
				if err != nil {
					return nil, err
				}
				logStep(st)
				l.Steps = append(l.Steps, st)
				if st.Clean {
					anyClean[stack] = true
				}
			}
		}
		// Other jobs on the machine can only add retransmissions (a stalled
		// process misses a 500 ms timer), never take them away: one clean
		// run shows the stack sustains the rate.
		for _, stack := range stacks {
			if failed[stack] {
				continue
			}
			if anyClean[stack] {
				l.CleanRate[stack] = rate
			} else {
				failed[stack] = true
				l.Broke[stack] = rate
			}
		}
		// No fixed top: go on while sipua is clean.
		if i == len(rates)-1 && !failed["sipua"] && c.step > 0 && rate+c.step <= c.maxRate {
			rates = append(rates, rate+c.step)
		}
	}
	if c.cpuRate > 0 {
		l.CPURate = c.cpuRate
		for _, stack := range stacks {
			if avg, ok := avgStepOK(l, stack, c.cpuRate); ok {
				l.CPUAt[stack] = avg
				continue
			}
			st, err := callStep(c, stack, c.cpuRate, 0)
			if err != nil {
				return nil, err
			}
			logStep(st)
			l.CPUAt[stack] = st
		}
	}
	return l, nil
}

func logStep(st Step) {
	fmt.Fprintf(os.Stderr, "calls %s rate=%d run=%d: %d/%d ok, failed %d, retrans %d/%d, timeouts %d, unexp %d, %.0f cps, %.1f µs CPU/call, %.0f%% CPU, %d sipp (%.0f%% CPU), clean=%v\n",
		st.Stack, st.Rate, st.Run, st.Sipp.Successful, st.Sipp.Calls, st.Sipp.Failed, st.Sipp.Retrans, st.Sipp.RecvRetrans,
		st.Sipp.Timeouts, st.Sipp.Unexpected, st.AchievedCPS, st.CPUPerCall, st.CPUPercent, st.UACs, st.SippCPU, st.Clean)
}

// printSteps writes one line per ladder step with both stacks.
func (l *Ladder) printSteps(w io.Writer) {
	fmt.Fprintln(w, "| calls/s | sipua: clean runs, retransmissions, failed, µs CPU/call | sipgo: clean runs, retransmissions, failed, µs CPU/call |")
	fmt.Fprintln(w, "|---:|---|---|")
	var rates []int
	for _, st := range l.Steps {
		if len(rates) == 0 || rates[len(rates)-1] != st.Rate {
			rates = append(rates, st.Rate)
		}
	}
	for _, rate := range rates {
		cells := map[string]string{}
		for _, stack := range stacks {
			runs, clean, retrans, failed := 0, 0, 0, 0
			var cpu []string
			for _, st := range l.Steps {
				if st.Rate != rate || st.Stack != stack {
					continue
				}
				runs++
				if st.Clean {
					clean++
				}
				retrans += st.Sipp.Retrans + st.Sipp.RecvRetrans
				failed += st.Sipp.Failed
				cpu = append(cpu, fmt.Sprintf("%.0f", st.CPUPerCall))
			}
			if runs == 0 {
				cells[stack] = "not run (failed a lower step)"
				continue
			}
			cells[stack] = fmt.Sprintf("%d/%d, %d, %d, %s", clean, runs, retrans, failed, strings.Join(cpu, " "))
		}
		fmt.Fprintf(w, "| %d | %s | %s |\n", rate, cells["sipua"], cells["sipgo"])
	}
}

// Idle is the result of the idle-calls test of one stack.
type Idle struct {
	Stack              string
	Calls              int
	Base, Held         Stats // after GC: before any call; all calls established
	Idle               Stats // after GC: established and their INVITE transactions ended (timer-wait later)
	Finished, AfterTmr Stats // after GC: all calls ended; transaction timers expired too
	Sipp               SippResult
}

func idleBoth(c config) (map[string]*Idle, error) {
	type res struct {
		i   *Idle
		err error
	}
	ch := make(chan res, len(stacks))
	for _, stack := range stacks {
		go func() {
			i, err := idle(c, stack)
			ch <- res{i, err}
		}()
	}
	out := map[string]*Idle{}
	var firstErr error
	for range stacks {
		r := <-ch
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		if r.i != nil {
			out[r.i.Stack] = r.i
		}
	}
	return out, firstErr
}

// idle holds c.idleN established calls on one UAS, then ends them.
func idle(c config, stack string) (*Idle, error) {
	i := &Idle{Stack: stack, Calls: c.idleN}
	dir, err := newDir(c.dir, "idle-"+stack)
	if err != nil {
		return nil, err
	}
	u, err := startUAS(stack, dir)
	if err != nil {
		return nil, err
	}
	defer u.close()
	scen, err := writeScenario(dir, "uac.xml")
	if err != nil {
		return nil, err
	}
	if i.Base, err = u.stats(true); err != nil {
		return nil, err
	}
	setup := time.Duration(float64(c.idleN)/float64(c.idleRate)*float64(time.Second)) + 2*time.Second
	hold := setup + c.timerWait + 8*time.Second
	p, _ := freePort()
	mp, _ := freePort()
	sp, err := startSipp(dir, "-sf", scen, u.addr, "-i", "127.0.0.1", "-p", strconv.Itoa(p), "-mp", strconv.Itoa(mp),
		"-s", "uas", "-r", strconv.Itoa(c.idleRate), "-rp", "1000", "-m", strconv.Itoa(c.idleN), "-l", strconv.Itoa(c.idleN+100),
		"-d", strconv.Itoa(int(hold.Milliseconds())), "-timeout", fmt.Sprintf("%ds", int((hold+setup).Seconds())+60), "-timeout_error")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), setup+5*time.Second)
	_, err = u.waitFor(ctx, func(s Stats) bool { return s.Active >= int64(c.idleN) })
	cancel()
	if err != nil {
		sp.stop()
		return nil, fmt.Errorf("%s: %d calls not all established: %w", stack, c.idleN, err)
	}
	if i.Held, err = u.stats(true); err != nil {
		return nil, err
	}
	if p := os.Getenv("SIPLOAD_MEMPROFILE"); p != "" {
		_, _ = u.in.WriteString("heap " + p + ".idle." + stack + "\n")
		_, _ = u.readLine(30 * time.Second)
	}
	time.Sleep(c.timerWait)
	if i.Idle, err = u.stats(true); err != nil {
		return nil, err
	}
	_ = sp.wait(hold + setup + 90*time.Second)
	if i.Sipp, err = sp.result(); err != nil {
		return nil, err
	}
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	_, err = u.waitFor(ctx, func(s Stats) bool { return s.Ended >= int64(c.idleN) })
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%s: calls not all ended: %w", stack, err)
	}
	if i.Finished, err = u.stats(true); err != nil {
		return nil, err
	}
	time.Sleep(c.timerWait)
	if i.AfterTmr, err = u.stats(true); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "idle %s: base %d B heap, %d goroutines; %d calls established: %d B heap, %d goroutines, RSS %d KiB; idle: %d B heap, %d goroutines, RSS %d KiB; finished: %d B; after timers: %d B\n",
		stack, i.Base.HeapLive, i.Base.Goroutines, c.idleN, i.Held.HeapLive, i.Held.Goroutines, i.Held.RSSKiB,
		i.Idle.HeapLive, i.Idle.Goroutines, i.Idle.RSSKiB, i.Finished.HeapLive, i.AfterTmr.HeapLive)
	return i, nil
}

// Register is the result of the register test.
type Register struct {
	Client RegResult
	Sipp   SippResult
}

func registerTest(c config) (Register, error) {
	var r Register
	dir, err := newDir(c.dir, "register")
	if err != nil {
		return r, err
	}
	scenName := "registrar.xml"
	if c.regAuth {
		scenName = "registrar-auth.xml"
	}
	scen, err := writeScenario(dir, scenName)
	if err != nil {
		return r, err
	}
	p, _ := freePort()
	mp, _ := freePort()
	sp, err := startSipp(dir, "-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(p), "-mp", strconv.Itoa(mp),
		"-deadcall_wait", "100", "-max_recv_loops", "10000")
	if err != nil {
		return r, err
	}
	defer sp.stop()
	select {
	case <-sp.done:
		return r, fmt.Errorf("sipp registrar ended at once (see %s/sipp.out)", dir)
	case <-time.After(500 * time.Millisecond):
	}
	self, err := os.Executable()
	if err != nil {
		return r, err
	}
	args := []string{"-server", "127.0.0.1:" + strconv.Itoa(p),
		"-uas", strconv.Itoa(c.regUAs), "-per", strconv.Itoa(c.regPer), "-expires", strconv.Itoa(c.regExp),
		"-rate", strconv.Itoa(c.regRate), "-window", c.regWin.String(), "-mode", c.regMode}
	if c.regPeriod {
		args = append(args, "-period")
	}
	if c.regBurst > 1 {
		args = append(args, "-burst", strconv.Itoa(c.regBurst))
	}
	if c.regAuth {
		args = append(args, "-password", "load-pw")
	}
	cmd := selfCommand(self, "regclient", args...)
	errf, err := os.Create(filepath.Join(dir, "regclient.err"))
	if err != nil {
		return r, err
	}
	defer errf.Close()
	cmd.Stderr = errf
	out, err := cmd.Output()
	if err != nil {
		return r, fmt.Errorf("regclient: %w (see %s)", err, errf.Name())
	}
	if err := json.Unmarshal(out, &r.Client); err != nil {
		return r, fmt.Errorf("regclient output %q: %w", out, err)
	}
	sp.stop()
	r.Sipp, err = sp.result()
	fmt.Fprintf(os.Stderr, "register: %+v\nregistrar: %+v\n", r.Client, r.Sipp)
	return r, err
}

type report struct {
	Micro    micro
	Ladder   *Ladder
	Idle     map[string]*Idle
	Register *Register
}

func (rep report) print(w io.Writer) {
	fmt.Fprintln(w, "| measure | sipua | sipgo v1.7.2 | ratio | target |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	rep.Micro.print(w)
	if l := rep.Ladder; l != nil {
		a, g := l.CleanRate["sipua"], l.CleanRate["sipgo"]
		fmt.Fprintf(w, "| UAS clean calls/s (highest ladder step with a clean run, all lower steps too) | %d | %d | %s | ≥2× |\n", a, g, ratio(float64(a), float64(g)))
		broke := func(s string) string {
			if r := l.Broke[s]; r > 0 {
				return strconv.Itoa(r)
			}
			return "not within the ladder"
		}
		brokeRatio := "-" // a stack that never broke has no breaking point
		if l.Broke["sipua"] > 0 {
			brokeRatio = ratio(float64(l.Broke["sipua"]), float64(l.Broke["sipgo"]))
		}
		fmt.Fprintf(w, "| UAS breaking point (first step with no clean run: failed calls, retransmissions or sipp short of the rate) | %s | %s | %s | |\n",
			broke("sipua"), broke("sipgo"), brokeRatio)
		fmt.Fprintf(w, "| sipua's clean calls/s against sipgo's breaking point | %d | %s | %s | ≥2× |\n",
			a, broke("sipgo"), ratio(float64(a), float64(l.Broke["sipgo"])))
		if l.CPURate > 0 {
			ca, cg := l.CPUAt["sipua"], l.CPUAt["sipgo"]
			note := func(st Step) string {
				if st.Clean {
					return fmt.Sprintf("%.1f", st.CPUPerCall)
				}
				return fmt.Sprintf("%.1f (not clean: %.0f calls/s reached)", st.CPUPerCall, st.AchievedCPS)
			}
			fmt.Fprintf(w, "| UAS CPU per call at %d calls/s (µs, getrusage) | %s | %s | %s | ≤60 µs |\n", l.CPURate, note(ca), note(cg), ratio(cg.CPUPerCall, ca.CPUPerCall))
		}
		// CPU per call and memory at the highest rate both were clean at.
		common := min(a, g)
		if common == 0 {
			common = l.Steps[0].Rate
		}
		ca, cg := avgStep(l, "sipua", common), avgStep(l, "sipgo", common)
		fmt.Fprintf(w, "| UAS CPU per call at %d calls/s (µs, getrusage) | %.1f | %.1f | %s | ≤60 µs |\n", common, ca.CPUPerCall, cg.CPUPerCall, ratio(cg.CPUPerCall, ca.CPUPerCall))
		fmt.Fprintf(w, "| UAS RSS after the %d calls/s step (MiB) | %.1f | %.1f | %s | |\n", common, float64(ca.RSSKiB)/1024, float64(cg.RSSKiB)/1024, ratio(float64(cg.RSSKiB), float64(ca.RSSKiB)))
		fmt.Fprintf(w, "| UAS live heap after that step, forced GC (MiB) | %.1f | %.1f | %s | |\n", float64(ca.HeapLive)/(1<<20), float64(cg.HeapLive)/(1<<20), ratio(float64(cg.HeapLive), float64(ca.HeapLive)))
	}
	for _, k := range []struct {
		name string
		f    func(*Idle) string
	}{
		{"idle calls held (sipp, established)", func(i *Idle) string { return strconv.Itoa(i.Calls) }},
		{"heap per established call, INVITE transaction still in its timers (B)", func(i *Idle) string { return perCall(i.Held.HeapLive, i.Base.HeapLive, i.Calls) }},
		{"heap per idle call, transactions ended (B)", func(i *Idle) string { return perCall(i.Idle.HeapLive, i.Base.HeapLive, i.Calls) }},
		{"goroutines per idle call", func(i *Idle) string {
			return fmt.Sprintf("%.2f", float64(i.Idle.Goroutines-i.Base.Goroutines)/float64(i.Calls))
		}},
		{"RSS with the idle calls (MiB)", func(i *Idle) string { return fmt.Sprintf("%.1f", float64(i.Idle.RSSKiB)/1024) }},
		{"live heap with the idle calls (MiB)", func(i *Idle) string { return fmt.Sprintf("%.1f", float64(i.Idle.HeapLive)/(1<<20)) }},
		{"heap held per finished call, timers running (B)", func(i *Idle) string { return perCall(i.Finished.HeapLive, i.Base.HeapLive, i.Calls) }},
		{"heap held per finished call, timers expired (B)", func(i *Idle) string { return perCall(i.AfterTmr.HeapLive, i.Base.HeapLive, i.Calls) }},
	} {
		if rep.Idle == nil {
			break
		}
		a, g := rep.Idle["sipua"], rep.Idle["sipgo"]
		va, vg := "-", "-"
		if a != nil {
			va = k.f(a)
		}
		if g != nil {
			vg = k.f(g)
		}
		fa, _ := strconv.ParseFloat(va, 64)
		fg, _ := strconv.ParseFloat(vg, 64)
		target := ""
		switch {
		case strings.HasPrefix(k.name, "RSS"), strings.HasPrefix(k.name, "live heap"):
			target = "≤100 MiB for 10k"
		case strings.HasPrefix(k.name, "goroutines"):
			target = "0"
		case strings.HasSuffix(k.name, "expired (B)"):
			target = "≤2048"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", k.name, va, vg, ratio(fg, fa), target)
	}
	if r := rep.Register; r != nil {
		c := r.Client
		n := c.UAs * c.PerUA
		pct := float64(c.WindowCPUMicros) / (c.WindowSeconds * 1e4)
		refreshes := int(c.WindowRegisters)
		how := "one sip.Stack, one UDP socket"
		if c.Mode == "ua" {
			how = "a UserAgent and socket per account"
		}
		fmt.Fprintf(w, "| registrations kept fresh by one process (%s; %d accounts × %d, expires %d s) | %d of %d | n/a | | 10 000 |\n", how, c.UAs, c.PerUA, c.Expires, c.Registered, n)
		target := "≤5%"
		if c.Expires >= 600 {
			target = "≤2%"
		}
		what := fmt.Sprintf("over %.0f s", c.WindowSeconds)
		if c.Period {
			what = fmt.Sprintf("over one refresh period (%.0f s) from the end of setup", c.WindowSeconds)
		}
		fmt.Fprintf(w, "| CPU keeping them fresh, %% of a core %s (%d REGISTERs sent in it) | %.2f%% | n/a | | %s |\n", what, refreshes, pct, target)
		if c.QuietSeconds > 0 && refreshes > 0 {
			idle := float64(c.QuietCPUMicros) / (c.QuietSeconds * 1e4)
			per := (float64(c.WindowCPUMicros) - float64(c.QuietCPUMicros)/c.QuietSeconds*c.WindowSeconds) / float64(refreshes)
			at600 := idle + per*float64(n)/(0.9*600)/1e4
			fmt.Fprintf(w, "| CPU holding them, no refresh due (%.0f s window) | %.2f%% | n/a | | |\n", c.QuietSeconds, idle)
			fmt.Fprintf(w, "| CPU per refresh (µs) → %% of a core at the default expires 600 s (derived) | %.0f µs → %.2f%% | n/a | | ≤2%% |\n", per, at600)
		}
		// Each registration refreshes every expires minus what is left
		// (RegistererOptions.RefreshFraction's default).
		period := float64(c.Expires) - max(0.1*float64(c.Expires), min(5, float64(c.Expires)/2))
		switch {
		case c.Period && n > 0:
			fmt.Fprintf(w, "| REGISTERs per refresh (registrar challenges with digest: %v) | %.2f | n/a | | 1 |\n", c.Auth, float64(refreshes)/float64(n))
		case n > 0 && period > 0 && c.WindowSeconds > 0:
			fmt.Fprintf(w, "| REGISTERs per refresh (registrar challenges with digest: %v) | %.2f | n/a | | 1 |\n",
				c.Auth, float64(refreshes)/(float64(n)*c.WindowSeconds/period))
		}
		fmt.Fprintf(w, "| register client: goroutines | %d | n/a | | ≤64 |\n", c.Goroutines)
		fmt.Fprintf(w, "| register client: heap after GC, HeapAlloc / HeapInuse (MiB); RSS (MiB) | %.1f / %.1f; %.1f | n/a | | ≤100 MiB |\n",
			float64(c.HeapLive)/(1<<20), float64(c.HeapInuse)/(1<<20), float64(c.RSSKiB)/1024)
		fmt.Fprintf(w, "| registrar (sipp) failed / retransmitted / unexpected / discarded (dead call) | %d / %d / %d / %d | | | 0 |\n", r.Sipp.Failed, r.Sipp.Retrans+r.Sipp.RecvRetrans, r.Sipp.Unexpected, r.Sipp.Dead)
		fmt.Fprintf(w, "| registrations that failed once and were retried (Registerer went Unregistered) | %d | | | 0 |\n", c.Failed)
	}
}

func perCall(v, base uint64, n int) string {
	return fmt.Sprintf("%.0f", (float64(v)-float64(base))/float64(n))
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// avgStepOK averages the runs of stack at rate; ok is false when there
// were none. Clean is set when one run was clean.
func avgStepOK(l *Ladder, stack string, rate int) (s Step, ok bool) {
	n := 0
	for _, st := range l.Steps {
		if st.Stack != stack || st.Rate != rate {
			continue
		}
		s.CPUPerCall += st.CPUPerCall
		s.AchievedCPS += st.AchievedCPS
		s.Clean = s.Clean || st.Clean
		n++
	}
	if n == 0 {
		return s, false
	}
	s.CPUPerCall /= float64(n)
	s.AchievedCPS /= float64(n)
	return s, true
}

// avgStep averages the runs of stack at rate.
func avgStep(l *Ladder, stack string, rate int) Step {
	var s Step
	n := 0
	for _, st := range l.Steps {
		if st.Stack != stack || st.Rate != rate {
			continue
		}
		s.CPUPerCall += st.CPUPerCall
		s.RSSKiB += st.RSSKiB
		s.HeapLive += st.HeapLive
		n++
	}
	if n > 0 {
		s.CPUPerCall /= float64(n)
		s.RSSKiB /= int64(n)
		s.HeapLive /= uint64(n)
	}
	return s
}
