package dialog

import (
	"fmt"

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

// Ack2xx is the UAC core's handling of a 2xx to an INVITE it sent (RFC
// 3261 §13.2.2.4, RFC 6026 §8): it finds the dialog of the 2xx's To tag or
// creates it — every forked 2xx gets its own dialog — confirms an early
// one, and returns the ACK to send to NextHop(ack). The first 2xx of a
// dialog gets a new ACK carrying via; a retransmitted 2xx gets the same ACK
// again (same branch). created tells whether the dialog is new. The caller
// adds a body to the ACK when the offer was in the 2xx.
func (s *Set) Ack2xx(invite *message.Request, resp *message.Response, via message.Via) (d *Dialog, ack *message.Request, created bool, err error) {
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, nil, false, fmt.Errorf("dialog: Ack2xx needs a 2xx, not %d", resp.StatusCode)
	}
	cseq, err := invite.Header.CSeq()
	if err != nil {
		return nil, nil, false, err
	}
	d = s.MatchResponse(resp)
	if d == nil {
		if d, err = NewUAC(invite, resp); err != nil {
			return nil, nil, false, err
		}
		s.Add(d)
		created = true
	} else if d.State == Early {
		if err := d.Confirm(resp); err != nil {
			return nil, nil, false, err
		}
	} else if d.ackSeq != cseq.Seq {
		// A 2xx to a re-INVITE: it may move the remote target.
		d.RefreshTarget(resp)
	}
	if d.ackSeq == cseq.Seq && d.ackBranch != "" {
		via.Params = via.Params.Set("branch", d.ackBranch)
	} else {
		d.ackSeq = cseq.Seq
		d.ackBranch = via.Branch()
		d.pack()
	}
	ack = d.NewAck(cseq.Seq)
	ack.Header.PrependVia(via)
	return d, ack, created, nil
}
