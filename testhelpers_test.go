package sip

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sipua/sip/media"
)

// This file holds the test doubles shared by the tests of package sip and
// of package sip_test (which sees them as sip.TestMedia …: exported names
// of a _test.go file are visible to the external test package only).

// TestMedia is the fake media.Handler of the tests: it offers and answers
// a fixed SDP and records what it is given. Safe for concurrent use.
type TestMedia struct {
	// Name goes into the o= line of the default SDP.
	Name string
	// SDP, when set, is the body offered and answered instead.
	SDP string

	mu     sync.Mutex
	calls  []string        // "set BODY", "replace BODY"
	types  []string        // content types given to SetDescription
	bodies []string        // bodies given to SetDescription
	gets   []media.Options // options of each GetDescription
	closed bool
}

// Body returns the SDP the handler offers and answers.
func (m *TestMedia) Body() string {
	if m.SDP != "" {
		return m.SDP
	}
	return "v=0\r\no=" + m.Name + " 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
}

// GetDescription returns Body and records o.
func (m *TestMedia) GetDescription(_ context.Context, o media.Options) (media.Description, error) {
	m.mu.Lock()
	m.gets = append(m.gets, o)
	m.mu.Unlock()
	return media.Description{ContentType: "application/sdp", Body: []byte(m.Body())}, nil
}

// SetDescription records d.
func (m *TestMedia) SetDescription(_ context.Context, d media.Description, _ media.Options) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "set "+string(d.Body))
	m.types = append(m.types, d.ContentType)
	m.bodies = append(m.bodies, string(d.Body))
	return nil
}

// TestReplacingMedia is a TestMedia that takes a replaced answer
// (media.AnswerReplacer, for forked calls).
type TestReplacingMedia struct{ *TestMedia }

// ReplaceAnswer records d.
func (r TestReplacingMedia) ReplaceAnswer(_ context.Context, d media.Description, _ media.Options) error {
	m := r.TestMedia
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, "replace "+string(d.Body))
	return nil
}

// HasDescription accepts application/sdp.
func (m *TestMedia) HasDescription(ct string) bool { return ct == "application/sdp" }

// SendDTMF is not supported.
func (m *TestMedia) SendDTMF(string, time.Duration) error { return media.ErrNotSupported }

// Close records the close.
func (m *TestMedia) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Calls returns "set BODY" and "replace BODY" for each description given,
// in order.
func (m *TestMedia) Calls() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

// Given returns the bodies given to SetDescription, in order.
func (m *TestMedia) Given() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.bodies...)
}

// Types returns the content types given to SetDescription, in order.
func (m *TestMedia) Types() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.types...)
}

// Gets returns the options of each GetDescription call.
func (m *TestMedia) Gets() []media.Options {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]media.Options(nil), m.gets...)
}

// Closed reports whether Close was called.
func (m *TestMedia) Closed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// TestMediaFactory makes a TestMedia per call (Name and SDP copied from
// its fields) and keeps them.
type TestMediaFactory struct {
	Name, SDP string

	mu sync.Mutex
	hs []*TestMedia
}

// New is the media.Factory.
func (f *TestMediaFactory) New(media.SessionInfo) (media.Handler, error) {
	h := &TestMedia{Name: f.Name, SDP: f.SDP}
	f.mu.Lock()
	f.hs = append(f.hs, h)
	f.mu.Unlock()
	return h, nil
}

// Last returns the handler made last, nil before the first.
func (f *TestMediaFactory) Last() *TestMedia {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.hs) == 0 {
		return nil
	}
	return f.hs[len(f.hs)-1]
}

// StartTestUA is the one UserAgent helper of the tests: it makes a
// UserAgent with opts, starts it, and stops it when the test ends (a
// failed Stop fails the test). Unset fields get test values: the URI
// sip:test@127.0.0.1, and a UDP listener on 127.0.0.1:0 when there is
// neither a Listen address nor a Server. For the in-memory network, set
// Transport.ListenPacket to Network.PacketListener(name).
func StartTestUA(t testing.TB, opts UserAgentOptions) *UserAgent {
	t.Helper()
	if opts.URI == "" {
		opts.URI = "sip:test@127.0.0.1"
	}
	if len(opts.Transport.Listen) == 0 && opts.Transport.Server == "" {
		opts.Transport.Listen = []string{"udp://127.0.0.1:0"}
	}
	ua, err := NewUserAgent(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, ua.Start(ctx))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, ua.Stop(ctx))
	})
	return ua
}
