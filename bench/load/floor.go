package main

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"golang.org/x/net/ipv4"
)

// runFloorUAS is no SIP stack: one goroutine reads each datagram, answers
// an INVITE or a BYE with a 200 built by copying its Via, From, To
// (tagged), Call-ID and CSeq lines, and counts ACKs and BYEs. No parse, no
// transaction, no dialog, no timer, no allocation per message: what a Go
// program pays on this machine for the system calls and the runtime's
// netpoller alone (3 reads and 2 writes per call). It is the floor under
// any Go UAS's CPU per call ("load floor"; FLOOR_BATCH=1: recvmmsg and
// sendmmsg, see floorBatch).
func runFloorUAS(addr string, c *counters) error {
	conn, err := bigBufferUDP(addr)
	if err != nil {
		return err
	}
	if h, _ := strconv.Atoi(os.Getenv("FLOOR_HOPS")); h > 0 {
		go floorHops(conn, c, h)
	} else if os.Getenv("FLOOR_BATCH") != "" {
		go floorBatch(conn, c)
	} else {
		go floorPlain(conn, c)
	}
	fmt.Println("ready")
	serveStats(c, os.Stdin, os.Stdout)
	return conn.Close()
}

// floorPlain reads and writes one datagram per system call.
func floorPlain(conn *net.UDPConn, c *counters) {
	{
		buf := make([]byte, 65536)
		out := make([]byte, 0, 2048)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			out = floorAnswer(out[:0], buf[:n], c)
			if len(out) > 0 {
				_, _ = conn.WriteToUDPAddrPort(out, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()))
			}
		}
	}
}

// floorBatch reads up to 64 datagrams per recvmmsg and sends the answers
// to a batch in one sendmmsg (FLOOR_BATCH=1).
func floorBatch(conn *net.UDPConn, c *counters) {
	pc := ipv4.NewPacketConn(conn)
	const n = 64
	in := make([]ipv4.Message, n)
	out := make([]ipv4.Message, n)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, 65536)}
		out[i].Buffers = [][]byte{make([]byte, 0, 2048)}
	}
	for {
		k, err := pc.ReadBatch(in, 0)
		if err != nil {
			return
		}
		w := 0
		for i := range k {
			b := floorAnswer(out[w].Buffers[0][:0], in[i].Buffers[0][:in[i].N], c)
			if len(b) > 0 {
				out[w].Buffers[0] = b
				out[w].Addr = in[i].Addr
				w++
			}
		}
		for sent := 0; sent < w; {
			m, err := pc.WriteBatch(out[sent:w], 0)
			if err != nil {
				break
			}
			sent += m
		}
	}
}

var (
	floorInvite = []byte("INVITE ")
	floorAck    = []byte("ACK ")
	floorBye    = []byte("BYE ")
)

// floorAnswer appends to out the 200 that answers msg, or nothing.
func floorAnswer(out, msg []byte, c *counters) []byte {
	switch {
	case bytes.HasPrefix(msg, floorAck):
		c.established.Add(1)
		c.active.Add(1)
		return out
	case bytes.HasPrefix(msg, floorBye):
		c.active.Add(-1)
		c.ended.Add(1)
	case bytes.HasPrefix(msg, floorInvite):
	default:
		return out
	}
	out = append(out, "SIP/2.0 200 OK\r\n"...)
	var callID []byte
	for rest := msg; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		line := rest[:i+1]
		rest = rest[i+1:]
		if len(line) <= 2 {
			break // the end of the header section
		}
		switch {
		case bytes.HasPrefix(line, []byte("Via:")), bytes.HasPrefix(line, []byte("From:")),
			bytes.HasPrefix(line, []byte("CSeq:")):
			out = append(out, line...)
		case bytes.HasPrefix(line, []byte("Call-ID:")):
			out = append(out, line...)
			callID = bytes.TrimSpace(line[len("Call-ID:"):])
		case bytes.HasPrefix(line, []byte("To:")):
			l := bytes.TrimRight(line, "\r\n")
			out = append(out, l...)
			if !bytes.Contains(l, []byte(";tag=")) {
				out = append(out, ";tag="...)
				out = strconv.AppendUint(out, uint64(len(callID))+uint64(len(msg)), 16)
			}
			out = append(out, "\r\n"...)
		}
	}
	out = append(out, "Contact: <sip:uas@127.0.0.1>\r\nContent-Length: 0\r\n\r\n"...)
	return out
}

// floorHops is floorPlain with each datagram handed through hops
// goroutines by channel before it is answered (FLOOR_HOPS=n): the cost of
// a goroutine hand-over per message on this machine.
func floorHops(conn *net.UDPConn, c *counters, hops int) {
	type dgram struct {
		b    []byte
		from netip.AddrPort
	}
	first := make(chan dgram, 256)
	in := first
	for range hops - 1 {
		out := make(chan dgram, 256)
		go func(in <-chan dgram, out chan<- dgram) {
			for d := range in {
				out <- d
			}
			close(out)
		}(in, out)
		in = out
	}
	go func(in <-chan dgram) {
		out := make([]byte, 0, 2048)
		for d := range in {
			out = floorAnswer(out[:0], d.b, c)
			if len(out) > 0 {
				_, _ = conn.WriteToUDPAddrPort(out, d.from)
			}
		}
	}(in)
	for {
		buf := make([]byte, 2048)
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			close(first)
			return
		}
		first <- dgram{buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port())}
	}
}
