package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// micro holds the medians of `go test -bench -benchmem` results of the
// bench package, by benchmark and library.
type micro map[string]map[string]microResult

type microResult struct {
	NsPerOp, BytesPerOp, AllocsPerOp float64
	MinNsPerOp                       float64
	Runs                             int
}

// readMicro parses benchmark output lines such as
// "BenchmarkParseInvite/lib=sipua-2  1000  1650 ns/op  540 MB/s  1336 B/op  3 allocs/op"
// and keeps the median of each value over the runs.
func readMicro(path string) (micro, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type samples struct{ ns, b, a []float64 }
	all := map[string]map[string]*samples{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name, lib, ok := strings.Cut(strings.TrimPrefix(fields[0], "Benchmark"), "/lib=")
		if !ok {
			continue
		}
		if i := strings.LastIndexByte(lib, '-'); i > 0 {
			lib = lib[:i] // GOMAXPROCS suffix
		}
		if all[name] == nil {
			all[name] = map[string]*samples{}
		}
		s := all[name][lib]
		if s == nil {
			s = &samples{}
			all[name][lib] = s
		}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				s.ns = append(s.ns, v)
			case "B/op":
				s.b = append(s.b, v)
			case "allocs/op":
				s.a = append(s.a, v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	m := micro{}
	for name, libs := range all {
		for _, s := range libs {
			if len(s.ns) == 0 {
				s.ns = []float64{0}
			}
		}
		m[name] = map[string]microResult{}
		for lib, s := range libs {
			m[name][lib] = microResult{NsPerOp: median(s.ns), MinNsPerOp: slices.Min(s.ns), BytesPerOp: median(s.b), AllocsPerOp: median(s.a), Runs: len(s.ns)}
		}
	}
	return m, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// microRows are the benchmarks shown in the table, with their targets.
var microRows = []struct{ name, what, target string }{
	{"ParseInvite", "parse INVITE + SDP, 891 B", "≥2.5×"},
	{"ParseInviteKeys", "parse INVITE and read Via branch, tags, Call-ID, CSeq", "≥2.5×"},
	{"ParseRegister200", "parse 200 OK to REGISTER, 386 B", "≥2.5×"},
	{"ParseOptions", "parse OPTIONS, 402 B", "≥2.5×"},
	{"WriteInvite", "write INVITE into a reused buffer", "≥3×"},
	{"StringInvite", "INVITE to a new string", "≥3×"},
	{"ResponseFromInvite", "build 200 to INVITE and write it", ""},
	{"Transaction", "non-INVITE transaction, both sides, in memory", ""},
}

func (m micro) print(w io.Writer) {
	for _, r := range microRows {
		libs, ok := m[r.name]
		if !ok {
			continue
		}
		a, g := libs["sipua"], libs["sipgo"]
		fmt.Fprintf(w, "| %s: ns/op median of %d [fastest] (allocs/op) | %s [%s] (%.0f) | %s [%s] (%.0f) | %s [%s] | %s |\n",
			r.what, a.Runs, ns(a.NsPerOp), ns(a.MinNsPerOp), a.AllocsPerOp, ns(g.NsPerOp), ns(g.MinNsPerOp), g.AllocsPerOp,
			ratio(g.NsPerOp, a.NsPerOp), ratio(g.MinNsPerOp, a.MinNsPerOp), r.target)
	}
}

func ns(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
