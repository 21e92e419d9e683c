package trace_test

import (
	"io"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/trace"
)

// TestAsync: events reach the next Tracer in order, as copies; a full
// queue drops and counts instead of blocking; Close drains and ends the
// goroutine; events after Close are counted as dropped.
func TestAsync(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var got []string
		a := trace.NewAsync(trace.Func(func(ev trace.Event) {
			<-release
			got = append(got, ev.Summary())
		}), 2)
		evs := exampleCall()
		raw := append([]byte(nil), evs[0].Raw...)
		first := evs[0]
		first.Raw = raw
		a.Trace(first)
		copy(raw, "XXXXXXX") // the transport reuses its buffer at once
		synctest.Wait()      // the goroutine holds the first event, waiting
		a.Trace(evs[3])
		a.Trace(evs[4])
		a.Trace(evs[5]) // the queue (2) is full: dropped, not waited for
		assert.Equal(t, int64(1), a.Dropped())
		close(release)
		require.NoError(t, a.Close())
		assert.Equal(t, []string{"INVITE sip:bob@192.0.2.20", "180 Ringing", "200 OK"}, got)
		a.Trace(evs[6])
		assert.Equal(t, int64(2), a.Dropped())
		require.NoError(t, a.Close())
	})
}

func BenchmarkPcapWriter(b *testing.B) {
	w, err := trace.NewPcapWriter(io.Discard)
	require.NoError(b, err)
	ev := exampleCall()[0]
	b.ReportAllocs()
	for b.Loop() {
		w.Trace(ev)
	}
}

func BenchmarkPcapWriterTCP(b *testing.B) {
	w, err := trace.NewPcapWriter(io.Discard)
	require.NoError(b, err)
	ev := exampleCall()[0]
	ev.Transport = "TCP"
	b.ReportAllocs()
	for b.Loop() {
		w.Trace(ev)
	}
}

func BenchmarkTextWriter(b *testing.B) {
	w := trace.NewTextWriter(io.Discard, trace.TextOptions{})
	ev := exampleCall()[0]
	b.ReportAllocs()
	for b.Loop() {
		w.Trace(ev)
	}
}

func BenchmarkRecorder(b *testing.B) {
	ev := exampleCall()[0]
	b.ReportAllocs()
	for b.Loop() {
		r := trace.NewRecorder(1)
		r.Trace(ev)
	}
}
