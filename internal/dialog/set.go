package dialog

import (
	"github.com/sipua/sip/message"
)

// Set is the dialogs of one user agent, indexed by ID. It is driven by one
// goroutine, like the transaction layer.
type Set struct {
	m map[ID]*Dialog
}

// NewSet returns an empty Set.
func NewSet() *Set { return &Set{m: make(map[ID]*Dialog)} }

// Len returns the number of dialogs.
func (s *Set) Len() int { return len(s.m) }

// Add adds d, replacing a dialog with the same ID.
func (s *Set) Add(d *Dialog) { s.m[d.ID] = d }

// Remove removes the dialog with id.
func (s *Set) Remove(id ID) { delete(s.m, id) }

// Get returns the dialog with id, or nil.
func (s *Set) Get(id ID) *Dialog { return s.m[id] }

// RequestID returns the dialog ID a received request belongs to, from the
// receiver's point of view: local tag = To tag, remote tag = From tag.
func RequestID(req *message.Request) ID {
	return ID{CallID: req.Header.CallID(), LocalTag: req.Header.ToTag(), RemoteTag: req.Header.FromTag()}
}

// ResponseID returns the dialog ID a received response belongs to, from
// the UAC's point of view: local tag = From tag, remote tag = To tag.
func ResponseID(resp *message.Response) ID {
	return ID{CallID: resp.Header.CallID(), LocalTag: resp.Header.FromTag(), RemoteTag: resp.Header.ToTag()}
}

// MatchRequest finds the dialog of a received request. A request without
// a To tag is outside any dialog: d is nil and err is nil. A request with
// a To tag that matches no dialog gives ErrNoDialog (answer 481, except
// for an ACK, which is dropped).
func (s *Set) MatchRequest(req *message.Request) (*Dialog, error) {
	id := RequestID(req)
	if id.LocalTag == "" {
		return nil, nil
	}
	d := s.m[id]
	if d == nil {
		return nil, ErrNoDialog
	}
	return d, nil
}

// MatchResponse finds the dialog of a response received by a UAC, or nil.
func (s *Set) MatchResponse(resp *message.Response) *Dialog {
	return s.m[ResponseID(resp)]
}
