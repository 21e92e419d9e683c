package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// StartKamailioWith starts Kamailio with the configuration template at
// cfgPath (relative to the package directory, e.g.
// "../examples/cluster/kamailio.cfg") on one UDP+TCP port (SIPPort; the
// other ports of the Kamailio are set to it too), and stops it when the
// test ends. The template's @SIP_PORT@ and @DIR@ (a temporary directory)
// are replaced, then the pairs of repl; files are written into that
// directory first (name → content; name may contain directories), after
// the same replacements.
func StartKamailioWith(t testing.TB, cfgPath string, files map[string]string, repl ...string) *Kamailio {
	t.Helper()
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		t.Fatalf("kamailio is not installed (%v): run interop/install.sh as root", err)
	}
	dir := t.TempDir()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatalf("kamailio: free ports: %v", err)
	}
	k := &Kamailio{Dir: dir, log: &lockedBuffer{}, done: make(chan struct{})}
	k.SIPPort = ports[0]
	k.TLSPort, k.WSPort, k.WSSPort = k.SIPPort, k.SIPPort, k.SIPPort
	r := strings.NewReplacer(append([]string{"@SIP_PORT@", strconv.Itoa(int(k.SIPPort)), "@DIR@", dir}, repl...)...)
	tmpl, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatalf("kamailio: template: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kamailio.cfg"), []byte(r.Replace(string(tmpl))), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(r.Replace(content)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k.bin = bin
	k.pidFile = filepath.Join(dir, "kamailio.pid")
	k.launch(t)
	t.Cleanup(func() {
		k.stop(t, k.pidFile)
		if t.Failed() {
			t.Logf("kamailio log (%s):\n%s", dir, k.Log())
		}
	})
	return k
}
