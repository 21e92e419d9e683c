package interop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// examplesBuilt caches the example programs built by BuildExamples for
// the whole test binary; RemoveExampleBuilds removes them at its end.
var examplesBuilt struct {
	mu    sync.Mutex
	dir   string
	paths map[string]string
}

// BuildExamples compiles the example programs examples/NAME (e.g.
// "softphone", "bot") with one go build, once per test binary, and returns
// the binaries' paths in the order of names.
func BuildExamples(t testing.TB, names ...string) []string {
	t.Helper()
	e := &examplesBuilt
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dir == "" {
		dir, err := os.MkdirTemp("", "sipua-examples-")
		if err != nil {
			t.Fatal(err)
		}
		e.dir, e.paths = dir, map[string]string{}
	}
	var missing []string
	for _, n := range names {
		if _, ok := e.paths[n]; !ok {
			missing = append(missing, "./examples/"+n)
		}
	}
	if len(missing) > 0 {
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("go is not in PATH: %v", err)
		}
		root, err := filepath.Abs("..")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		cmd := exec.Command(goBin, append([]string{"build", "-o", e.dir + string(filepath.Separator)}, missing...)...)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", missing, err, b)
		}
		t.Logf("built %v in %v", missing, time.Since(start).Round(time.Millisecond))
		for _, m := range missing {
			n := filepath.Base(m)
			e.paths[n] = filepath.Join(e.dir, n)
		}
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = e.paths[n]
	}
	return out
}

// RemoveExampleBuilds removes what BuildExamples built; TestMain calls it.
func RemoveExampleBuilds() {
	e := &examplesBuilt
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
		e.dir, e.paths = "", nil
	}
}

// App is an example program (softphone, bot) running as a process: the
// test writes commands to its standard input (Send) and waits for lines
// of its standard output (Expect).
type App struct {
	// Name identifies the process in messages, e.g. "softphone/alice".
	Name string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *lockedBuffer // stderr
	done  chan struct{}
	err   error

	mu      sync.Mutex
	lines   []string
	mark    int
	changed chan struct{}
}

// StartApp starts bin with args in its own process group. When the test
// ends it closes the program's standard input (the softphone quits then),
// signals it by PID (SIGTERM, then SIGKILL to its group) if it still
// runs, and prints its output when the test failed.
func StartApp(t testing.TB, name, bin string, args ...string) *App {
	t.Helper()
	a := &App{Name: name, log: &lockedBuffer{}, done: make(chan struct{}), changed: make(chan struct{})}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Dir = t.TempDir()
	a.cmd.Stderr = a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if a.stdin, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			a.mu.Lock()
			a.lines = append(a.lines, sc.Text())
			close(a.changed)
			a.changed = make(chan struct{})
			a.mu.Unlock()
		}
		a.err = a.cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		_ = a.stdin.Close()
		a.stop(t, 5*time.Second)
		if t.Failed() {
			t.Logf("--- %s (pid %d) output:\n%s\n--- stderr:\n%s", a.Name, a.cmd.Process.Pid, a.Output(), a.log.String())
		}
	})
	return a
}

// stop waits up to grace for the process to end, then signals it.
func (a *App) stop(t testing.TB, grace time.Duration) {
	select {
	case <-a.done:
		return
	case <-time.After(grace):
	}
	pid := a.cmd.Process.Pid
	t.Logf("%s (pid %d) still running; sending SIGTERM", a.Name, pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-a.done:
		return
	case <-time.After(3 * time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-a.done
}

// Send writes a command line to the program's standard input; Expect
// then looks at the lines printed after it.
func (a *App) Send(t testing.TB, line string) {
	t.Helper()
	a.mu.Lock()
	a.mark = len(a.lines)
	a.mu.Unlock()
	if _, err := io.WriteString(a.stdin, line+"\n"); err != nil {
		t.Fatalf("%s: send %q: %v", a.Name, line, err)
	}
}

// Expect waits (up to DefaultEventTimeout) for a line matching the
// regular expression re, printed since the last Send, and returns it.
func (a *App) Expect(t testing.TB, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(DefaultEventTimeout)
	exited := false
	for {
		a.mu.Lock()
		for _, l := range a.lines[a.mark:] {
			if rx.MatchString(l) {
				a.mu.Unlock()
				return l
			}
		}
		changed := a.changed
		a.mu.Unlock()
		if exited {
			t.Fatalf("%s exited (%v) without printing a line matching %q", a.Name, a.err, re)
		}
		select {
		case <-changed:
		case <-a.done: // all output is read by now: look once more
			exited = true
		case <-deadline:
			t.Fatalf("%s: no line matching %q within %v", a.Name, re, DefaultEventTimeout)
		}
	}
}

// Wait waits for the program to exit and returns its exit code.
func (a *App) Wait(ctx context.Context) (int, error) {
	select {
	case <-a.done:
	case <-ctx.Done():
		return -1, fmt.Errorf("%s still running: %w", a.Name, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(a.err, &ee) {
		return ee.ExitCode(), nil
	}
	if a.err != nil {
		return -1, a.err
	}
	return 0, nil
}

// Signal sends sig to the program, by PID.
func (a *App) Signal(sig syscall.Signal) error { return syscall.Kill(a.cmd.Process.Pid, sig) }

// Output returns the lines printed on standard output so far.
func (a *App) Output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return strings.Join(a.lines, "\n")
}

// Stderr returns what the program wrote on standard error so far.
func (a *App) Stderr() string { return a.log.String() }
