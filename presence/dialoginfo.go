package presence

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
)

// DialogState is the state of a dialog in a dialog-info document
// (RFC 4235 §3.7.1).
type DialogState string

// The dialog states of RFC 4235.
const (
	Trying     DialogState = "trying"
	Proceeding DialogState = "proceeding"
	Early      DialogState = "early"
	Confirmed  DialogState = "confirmed"
	Terminated DialogState = "terminated"
)

// Valid reports whether s is one of the five states.
func (s DialogState) Valid() bool {
	switch s {
	case Trying, Proceeding, Early, Confirmed, Terminated:
		return true
	}
	return false
}

// DialogInfo is a dialog-info document (RFC 4235): the dialogs of one
// monitored entity, the busy-lamp field.
type DialogInfo struct {
	// Entity is the monitored URI.
	Entity string
	// Version counts the documents sent for a subscription, from 0.
	Version uint32
	// Full is true for state="full" (all dialogs), false for "partial".
	Full bool
	// Dialogs are the entity's dialogs; none means idle.
	Dialogs []Dialog
}

// Dialog is one dialog of a dialog-info document.
type Dialog struct {
	// ID identifies the dialog within the document (required).
	ID string
	// CallID, LocalTag and RemoteTag identify the SIP dialog (optional;
	// servers may leave them out for privacy).
	CallID, LocalTag, RemoteTag string
	// Direction is "initiator" (the entity called) or "recipient" (it
	// was called); empty when absent.
	Direction string
	// State is the dialog's state; Event and Code the optional event
	// ("cancelled", "rejected", "replaced", "local-bye", "remote-bye",
	// "error", "timeout") and the response code that caused it.
	State DialogState
	Event string
	Code  int
	// Local and Remote are the participants (optional).
	Local, Remote Participant
}

// Participant is the local or remote side of a dialog.
type Participant struct {
	// Identity is the participant's URI; Display its display name.
	Identity string
	Display  string
	// Target is the participant's target URI (e.g. its Contact).
	Target string
}

// Busy reports whether the entity has a dialog that is not terminated:
// the lamp is on.
func (d *DialogInfo) Busy() bool {
	for _, dl := range d.Dialogs {
		if dl.State != Terminated {
			return true
		}
	}
	return false
}

type xmlIdentity struct {
	Display string `xml:"display,attr,omitempty"`
	URI     string `xml:",chardata"`
}

type xmlTarget struct {
	URI string `xml:"uri,attr"`
}

type xmlParticipant struct {
	Identity *xmlIdentity `xml:"urn:ietf:params:xml:ns:dialog-info identity"`
	Target   *xmlTarget   `xml:"urn:ietf:params:xml:ns:dialog-info target"`
}

func (p *xmlParticipant) get() Participant {
	if p == nil {
		return Participant{}
	}
	var out Participant
	if p.Identity != nil {
		out.Identity = strings.TrimSpace(p.Identity.URI)
		out.Display = p.Identity.Display
	}
	if p.Target != nil {
		out.Target = p.Target.URI
	}
	return out
}

func participant(p Participant) *xmlParticipant {
	if p == (Participant{}) {
		return nil
	}
	x := &xmlParticipant{}
	if p.Identity != "" || p.Display != "" {
		x.Identity = &xmlIdentity{Display: p.Display, URI: p.Identity}
	}
	if p.Target != "" {
		x.Target = &xmlTarget{URI: p.Target}
	}
	return x
}

type xmlState struct {
	Event string `xml:"event,attr,omitempty"`
	Code  string `xml:"code,attr,omitempty"`
	Value string `xml:",chardata"`
}

type xmlDialog struct {
	ID        string          `xml:"id,attr"`
	CallID    string          `xml:"call-id,attr,omitempty"`
	LocalTag  string          `xml:"local-tag,attr,omitempty"`
	RemoteTag string          `xml:"remote-tag,attr,omitempty"`
	Direction string          `xml:"direction,attr,omitempty"`
	State     xmlState        `xml:"urn:ietf:params:xml:ns:dialog-info state"`
	Local     *xmlParticipant `xml:"urn:ietf:params:xml:ns:dialog-info local"`
	Remote    *xmlParticipant `xml:"urn:ietf:params:xml:ns:dialog-info remote"`
}

type xmlDialogInfo struct {
	XMLName xml.Name    `xml:"urn:ietf:params:xml:ns:dialog-info dialog-info"`
	Version string      `xml:"version,attr"`
	State   string      `xml:"state,attr"`
	Entity  string      `xml:"entity,attr"`
	Dialogs []xmlDialog `xml:"urn:ietf:params:xml:ns:dialog-info dialog"`
}

// Marshal returns the document as application/dialog-info+xml.
func (d *DialogInfo) Marshal() ([]byte, error) {
	if d.Entity == "" {
		return nil, fmt.Errorf("%w: dialog-info without entity", ErrInvalid)
	}
	doc := xmlDialogInfo{Version: strconv.FormatUint(uint64(d.Version), 10), State: "partial", Entity: d.Entity}
	if d.Full {
		doc.State = "full"
	}
	for _, dl := range d.Dialogs {
		if dl.ID == "" {
			return nil, fmt.Errorf("%w: dialog without id", ErrInvalid)
		}
		if !dl.State.Valid() {
			return nil, fmt.Errorf("%w: dialog state %q", ErrInvalid, dl.State)
		}
		x := xmlDialog{ID: dl.ID, CallID: dl.CallID, LocalTag: dl.LocalTag, RemoteTag: dl.RemoteTag,
			Direction: dl.Direction, State: xmlState{Event: dl.Event, Value: string(dl.State)},
			Local: participant(dl.Local), Remote: participant(dl.Remote)}
		if dl.Code != 0 {
			x.State.Code = strconv.Itoa(dl.Code)
		}
		doc.Dialogs = append(doc.Dialogs, x)
	}
	return marshal(doc)
}

// ParseDialogInfo parses an application/dialog-info+xml body. A dialog
// state other than the five of RFC 4235 fails with ErrMalformed.
func ParseDialogInfo(body []byte) (*DialogInfo, error) {
	var doc xmlDialogInfo
	if err := unmarshal(body, &doc); err != nil {
		return nil, err
	}
	d := &DialogInfo{Entity: doc.Entity, Full: doc.State == "full"}
	if doc.Version != "" {
		v, err := strconv.ParseUint(strings.TrimSpace(doc.Version), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("%w: version %q", ErrMalformed, doc.Version)
		}
		d.Version = uint32(v)
	}
	for _, x := range doc.Dialogs {
		dl := Dialog{ID: x.ID, CallID: x.CallID, LocalTag: x.LocalTag, RemoteTag: x.RemoteTag,
			Direction: x.Direction, State: DialogState(strings.TrimSpace(x.State.Value)), Event: x.State.Event,
			Local: x.Local.get(), Remote: x.Remote.get()}
		if !dl.State.Valid() {
			return nil, fmt.Errorf("%w: dialog %q state %q", ErrMalformed, x.ID, x.State.Value)
		}
		if x.State.Code != "" {
			c, err := strconv.Atoi(strings.TrimSpace(x.State.Code))
			if err != nil || c < 100 || c > 699 {
				return nil, fmt.Errorf("%w: dialog %q code %q", ErrMalformed, x.ID, x.State.Code)
			}
			dl.Code = c
		}
		d.Dialogs = append(d.Dialogs, dl)
	}
	return d, nil
}
