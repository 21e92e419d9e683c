package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary act as the UAS and register-client child
// processes the driver starts (see selfCommand).
func TestMain(m *testing.M) {
	if sub := os.Getenv("SIPLOAD_SUBCOMMAND"); sub != "" {
		os.Args = append([]string{os.Args[0], sub}, strings.Fields(os.Getenv("SIPLOAD_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

// TestSmoke runs one short, low-rate step of the call ladder against each
// UAS, and a few registrations (one sip.Stack for all accounts, then a
// UserAgent per account): every call and registration must succeed.
// It asserts nothing about time or CPU (the machine may be busy); the
// numbers come from run.sh.
func TestSmoke(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Fatalf("sipp is not installed (interop/install.sh installs it): %v", err)
	}
	c := config{duration: time.Second, dir: t.TempDir(), regUAs: 20, regPer: 1, regExp: 3600, regRate: 100, regWin: 200 * time.Millisecond}
	for _, stack := range stacks {
		st, err := callStep(c, stack, 50, 0)
		if err != nil {
			t.Fatal(err)
		}
		if st.Sipp.Calls != 50 || st.Sipp.Successful != 50 || st.Sipp.Failed != 0 {
			t.Errorf("%s: %+v", stack, st.Sipp)
		}
	}
	// The Go floor (floor.go), each variant: sipp's calls all succeed
	// against its canned answers.
	for _, env := range [][2]string{{"FLOOR_BATCH", ""}, {"FLOOR_BATCH", "1"}, {"FLOOR_HOPS", "2"}} {
		t.Run("floor "+env[0]+"="+env[1], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			st, err := callStep(c, "floor", 50, 0)
			if err != nil {
				t.Fatal(err)
			}
			if st.Sipp.Calls != 50 || st.Sipp.Successful != 50 || st.Sipp.Failed != 0 {
				t.Errorf("floor: %+v", st.Sipp)
			}
		})
	}
	// Registrations on one Stack, and with a UserAgent per account; with
	// digest on the Stack.
	for _, m := range []struct {
		mode string
		auth bool
	}{{"stack", true}, {"ua", false}} {
		c.regMode, c.regAuth = m.mode, m.auth
		r, err := registerTest(c)
		if err != nil {
			t.Fatal(err)
		}
		if r.Client.Mode != m.mode || r.Client.Registered != 20 || r.Client.Failed != 0 || r.Sipp.Failed != 0 {
			t.Errorf("register (%s): %+v, registrar %+v", m.mode, r.Client, r.Sipp)
		}
	}
}
