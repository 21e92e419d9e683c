package main

import (
	"bufio"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

//go:embed scenarios/*.xml
var scenarios embed.FS

// freePort returns a UDP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// writeScenario copies an embedded scenario into dir.
func writeScenario(dir, name string) (string, error) {
	b, err := scenarios.ReadFile("scenarios/" + name)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, name)
	return p, os.WriteFile(p, b, 0o644)
}

// SippResult is what one sipp run reports, from its -trace_stat and
// -trace_counts files.
type SippResult struct {
	Calls       int     // outgoing (UAC) or incoming (UAS) calls created
	Successful  int     // SuccessfulCall(C)
	Failed      int     // FailedCall(C)
	Retrans     int     // sipp's own retransmissions (Retransmissions(C))
	RecvRetrans int     // retransmissions sipp received (sum of *_Retrans of recv rows)
	Timeouts    int     // sum of *_Timeout
	Unexpected  int     // sum of *_Unexp
	Elapsed     float64 // seconds
	Dead        int     // DeadCallMsgs(C)
}

// Clean reports a run with every call successful and not one message
// retransmitted by either side.
func (r SippResult) Clean() bool {
	return r.Failed == 0 && r.Retrans == 0 && r.RecvRetrans == 0 && r.Timeouts == 0 && r.Unexpected == 0 &&
		r.Successful == r.Calls && r.Calls > 0
}

// add sums o into r (two sipp UACs of one step): counts add up, the
// elapsed time is the longer one.
func (r *SippResult) add(o SippResult) {
	r.Calls += o.Calls
	r.Successful += o.Successful
	r.Failed += o.Failed
	r.Retrans += o.Retrans
	r.RecvRetrans += o.RecvRetrans
	r.Timeouts += o.Timeouts
	r.Unexpected += o.Unexpected
	r.Dead += o.Dead
	r.Elapsed = max(r.Elapsed, o.Elapsed)
}

// Sipp is one sipp process.
type Sipp struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	err  error
}

// cpuMicros returns the user and system CPU time sipp used, once it has
// ended (0 before).
func (s *Sipp) cpuMicros() int64 {
	select {
	case <-s.done:
	default:
		return 0
	}
	ps := s.cmd.ProcessState
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Microseconds()
}

// startSipp runs sipp in dir with args (the scenario, ports and limits are
// the caller's); trace files go into dir.
func startSipp(dir string, args ...string) (*Sipp, error) {
	// -buff_size: sipp's socket buffers (64 KiB by default) overflow
	// when it is descheduled for a moment on a busy machine.
	args = append([]string{"-nostdin", "-buff_size", "4194304", "-trace_stat", "-stf", filepath.Join(dir, "stat.csv"), "-fd", "3600",
		"-trace_counts", "-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_screen", "-screen_file", filepath.Join(dir, "screen.txt")}, args...)
	cmd := exec.Command("sipp", args...)
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "sipp.out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("sipp: %w", err)
	}
	s := &Sipp{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		out.Close()
		close(s.done)
	}()
	return s, nil
}

// wait waits for sipp to end by itself, or stops it (by PID) after d.
func (s *Sipp) wait(d time.Duration) error {
	select {
	case <-s.done:
	case <-time.After(d):
		s.stop()
		return fmt.Errorf("sipp did not end within %v", d)
	}
	return s.err
}

func (s *Sipp) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGUSR1) // sipp: dump stats and quit
	select {
	case <-s.done:
	case <-time.After(3 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// result reads sipp's trace files.
func (s *Sipp) result() (SippResult, error) {
	var r SippResult
	stat, err := lastCSV(filepath.Join(s.dir, "stat.csv"))
	if err != nil {
		return r, err
	}
	geti := func(m map[string]string, k string) int {
		v, _ := strconv.Atoi(strings.TrimSpace(m[k]))
		return v
	}
	r.Calls = geti(stat, "OutgoingCall(C)") + geti(stat, "IncomingCall(C)")
	r.Successful = geti(stat, "SuccessfulCall(C)")
	r.Failed = geti(stat, "FailedCall(C)")
	r.Retrans = geti(stat, "Retransmissions(C)")
	r.Dead = geti(stat, "DeadCallMsgs(C)")
	r.Elapsed = parseElapsed(stat["ElapsedTime(C)"])
	counts, _ := filepath.Glob(filepath.Join(s.dir, "*_counts.csv"))
	if len(counts) == 1 {
		c, err := lastCSV(counts[0])
		if err != nil {
			return r, err
		}
		for k, v := range c {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			switch {
			case strings.HasSuffix(k, "_Retrans") && isRecvRow(c, k):
				r.RecvRetrans += n
			case strings.HasSuffix(k, "_Timeout"):
				r.Timeouts += n
			case strings.HasSuffix(k, "_Unexp"):
				r.Unexpected += n
			}
		}
	}
	return r, nil
}

// isRecvRow says whether the counts column k (e.g. "4_200_Retrans")
// belongs to a receive step: those have a "_Recv" column, send steps a
// "_Sent" one.
func isRecvRow(c map[string]string, k string) bool {
	_, ok := c[strings.TrimSuffix(k, "_Retrans")+"_Recv"]
	return ok
}

// lastCSV reads a sipp CSV file (';'-separated, header line first) and
// returns its last line by column name.
func lastCSV(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var head, last []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if head == nil {
			head = strings.Split(line, ";")
			continue
		}
		last = strings.Split(line, ";")
	}
	if head == nil || last == nil {
		return nil, fmt.Errorf("%s: no data", path)
	}
	m := make(map[string]string, len(head))
	for i, h := range head {
		if i < len(last) {
			m[h] = last[i]
		}
	}
	return m, nil
}

// parseElapsed reads sipp's "HH:MM:SS" or "HH:MM:SS:micro" elapsed time.
func parseElapsed(s string) float64 {
	f := strings.Split(strings.TrimSpace(s), ":")
	if len(f) < 3 {
		return 0
	}
	h, _ := strconv.Atoi(f[0])
	m, _ := strconv.Atoi(f[1])
	sec, _ := strconv.Atoi(f[2])
	t := float64(h*3600 + m*60 + sec)
	if len(f) == 4 {
		us, _ := strconv.Atoi(f[3])
		t += float64(us) / 1e6
	}
	return t
}

// selfCommand runs this program with a subcommand. The arguments go on the
// command line and, for a test binary (whose flags are the testing
// package's), in SIPLOAD_SUBCOMMAND and SIPLOAD_ARGS too: TestMain reads
// those.
func selfCommand(self, sub string, args ...string) *exec.Cmd {
	cmd := exec.Command(self, append([]string{sub}, args...)...)
	cmd.Env = append(os.Environ(), "SIPLOAD_SUBCOMMAND="+sub, "SIPLOAD_ARGS="+strings.Join(args, " "))
	return cmd
}

// UAS is a UAS child process under test.
type UAS struct {
	stack string
	addr  string
	cmd   *exec.Cmd
	in    *os.File
	out   *bufio.Reader
}

// startUAS runs this program as "uas -stack S -addr A" and waits until it
// listens.
func startUAS(stack string, logDir string) (*UAS, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := selfCommand(self, "uas", "-stack", stack, "-addr", addr)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	errf, err := os.Create(filepath.Join(logDir, stack+"-uas.err"))
	if err != nil {
		return nil, err
	}
	cmd.Stderr = errf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	u := &UAS{stack: stack, addr: addr, cmd: cmd, in: stdin.(*os.File), out: bufio.NewReader(stdout)}
	line, err := u.readLine(10 * time.Second)
	if err != nil || line != "ready" {
		u.close()
		return nil, fmt.Errorf("%s UAS did not start (%q, %v): see %s", stack, line, err, errf.Name())
	}
	return u, nil
}

func (u *UAS) readLine(d time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := u.out.ReadString('\n')
		ch <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(d):
		return "", errors.New("timeout")
	}
}

// stats asks the UAS for its stats, after a forced GC when gc is set.
func (u *UAS) stats(gc bool) (Stats, error) {
	cmd := "stats\n"
	if gc {
		cmd = "gc\n"
	}
	var s Stats
	if _, err := u.in.WriteString(cmd); err != nil {
		return s, err
	}
	line, err := u.readLine(30 * time.Second)
	if err != nil {
		return s, fmt.Errorf("%s UAS stats: %w", u.stack, err)
	}
	return s, json.Unmarshal([]byte(line), &s)
}

func (u *UAS) close() {
	_, _ = u.in.WriteString("quit\n")
	u.in.Close()
	done := make(chan struct{})
	go func() { _ = u.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = u.cmd.Process.Kill()
		<-done
	}
}

// waitFor polls the UAS until cond holds or ctx ends.
func (u *UAS) waitFor(ctx context.Context, cond func(Stats) bool) (Stats, error) {
	for {
		s, err := u.stats(false)
		if err != nil {
			return s, err
		}
		if cond(s) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
