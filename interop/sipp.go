package interop

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// SippConfig configures StartSipp.
type SippConfig struct {
	// Scenario is a file name in sipp/, e.g. "uac-auth.xml"; required.
	Scenario string
	// Remote is the host:port sipp sends to; empty for a UAS that only
	// answers.
	Remote string
	// Calls is the number of calls after which sipp exits (-m); default 1.
	Calls int
	// Timeout ends the run as a failure (-timeout, -timeout_error);
	// default 20 s.
	Timeout time.Duration
	// User and Password answer digest challenges (-au, -ap).
	User, Password string
	// Service is the user part of the request URI (-s).
	Service string
	// Keys are scenario keywords (-key NAME VALUE), e.g. "domain".
	Keys map[string]string
	// Args are extra command-line arguments.
	Args []string
}

// Sipp is a sipp process started by StartSipp: UDP on 127.0.0.1, its own
// SIP, media and control ports, a temporary directory for its traces.
type Sipp struct {
	// Name is the scenario name with the SIP port, e.g. "uas.xml:40123".
	Name string
	// Port is sipp's SIP port (UDP) on 127.0.0.1.
	Port uint16
	// Dir holds the message trace and error log.
	Dir string

	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error // exit status, set before done is closed
}

// StartSipp starts sipp with a scenario from sipp/ and stops it by PID
// when the test ends if it is still running. It fails the test, saying
// why, when sipp is not installed.
func StartSipp(t testing.TB, cfg SippConfig) *Sipp {
	t.Helper()
	bin, err := exec.LookPath("sipp")
	if err != nil {
		t.Fatalf("sipp is not installed (%v): run interop/install.sh as root (scripts/test.sh does), "+
			"or apt-get install sip-tester", err)
	}
	scenario, err := filepath.Abs(filepath.Join("sipp", cfg.Scenario))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(scenario); err != nil {
		t.Fatalf("sipp scenario: %v", err)
	}
	if cfg.Calls == 0 {
		cfg.Calls = 1
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 20 * time.Second
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatalf("sipp: %v", err)
	}
	media, err := freeUDPBlock(4) // RTP and RTCP for audio and video
	if err != nil {
		t.Fatalf("sipp: %v", err)
	}
	s := &Sipp{
		Name: fmt.Sprintf("%s:%d", cfg.Scenario, ports[0]),
		Port: ports[0],
		Dir:  t.TempDir(),
		out:  &lockedBuffer{},
		done: make(chan struct{}),
	}
	args := []string{"-sf", scenario,
		"-i", "127.0.0.1", "-p", strconv.Itoa(int(s.Port)), "-t", "u1",
		"-mi", "127.0.0.1", "-mp", strconv.Itoa(int(media)),
		"-ci", "127.0.0.1", "-cp", strconv.Itoa(int(ports[1])),
		"-m", strconv.Itoa(cfg.Calls),
		"-timeout", fmt.Sprintf("%dms", cfg.Timeout.Milliseconds()), "-timeout_error",
		"-trace_msg", "-message_file", filepath.Join(s.Dir, "messages.log"),
		"-trace_err", "-error_file", filepath.Join(s.Dir, "errors.log"),
		"-nostdin",
	}
	if cfg.User != "" {
		args = append(args, "-au", cfg.User, "-ap", cfg.Password)
	}
	if cfg.Service != "" {
		args = append(args, "-s", cfg.Service)
	}
	for k, v := range cfg.Keys {
		args = append(args, "-key", k, v)
	}
	args = append(args, cfg.Args...)
	if cfg.Remote != "" {
		args = append(args, cfg.Remote)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = s.Dir // sipp writes any other file into its working directory
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("sipp: start: %v", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			t.Logf("%s (pid %d) still running at the end of the test; stopping it", s.Name, s.cmd.Process.Pid)
			_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-s.done:
			case <-time.After(2 * time.Second):
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
				<-s.done
			}
		}
		if t.Failed() {
			t.Logf("--- %s: sipp %v\n%s", s.Name, args, s.Report())
		}
	})
	return s
}

// Wait waits for sipp to exit; it returns nil when every call succeeded
// (exit status 0), else an error with the exit status.
func (s *Sipp) Wait(ctx context.Context) error {
	select {
	case <-s.done:
	case <-ctx.Done():
		return fmt.Errorf("%s still running: %w", s.Name, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(s.err, &ee) {
		return fmt.Errorf("%s failed: exit status %d (1: a call failed, 255/254: fatal error)", s.Name, ee.ExitCode())
	}
	if s.err != nil {
		return fmt.Errorf("%s: %w", s.Name, s.err)
	}
	return nil
}

// Messages returns sipp's message trace (-trace_msg) so far.
func (s *Sipp) Messages() string { return readIfExists(filepath.Join(s.Dir, "messages.log")) }

// Errors returns sipp's error log (-trace_err) so far.
func (s *Sipp) Errors() string { return readIfExists(filepath.Join(s.Dir, "errors.log")) }

// Report returns sipp's error log, screen output and message trace.
func (s *Sipp) Report() string {
	return "errors:\n" + s.Errors() + "\nscreen:\n" + s.out.String() + "\nmessages:\n" + s.Messages()
}

func readIfExists(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return string(b)
}

// freeUDPBlock returns the first of n consecutive ports free for UDP on
// 127.0.0.1 (sipp binds its media sockets next to each other), below the
// ephemeral range like freePorts.
func freeUDPBlock(n int) (uint16, error) {
	for tries := 0; tries < 200; tries++ {
		base := portLow + mrand.IntN(portHigh-portLow-n)
		var held []net.PacketConn
		ok := true
		for i := 0; i < n; i++ {
			c, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, c)
		}
		for _, c := range held {
			c.Close()
		}
		if ok {
			return uint16(base), nil
		}
	}
	return 0, errors.New("no block of free UDP ports")
}
