package mongotest

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// message builds a wire message: header, then body.
func message(requestID, responseTo, opCode int32, body []byte) []byte {
	msg := make([]byte, headerLen, headerLen+len(body))
	binary.LittleEndian.PutUint32(msg[0:], uint32(headerLen+len(body)))
	binary.LittleEndian.PutUint32(msg[4:], uint32(requestID))
	binary.LittleEndian.PutUint32(msg[8:], uint32(responseTo))
	binary.LittleEndian.PutUint32(msg[12:], uint32(opCode))
	return append(msg, body...)
}

// opMsg builds an OP_MSG with a document sequence, then the command on db
// with filler bytes of padding, so that it can be large.
func opMsgOn(requestID int32, db string, filler int) []byte {
	seq := bsoncore.NewDocumentBuilder().AppendString("x", "y").Build()
	body := []byte{0, 0, 0, 0, 1} // flag bits, then a kind 1 section
	body = binary.LittleEndian.AppendUint32(body, uint32(4+len("documents")+1+len(seq)))
	body = append(append(append(body, "documents"...), 0), seq...)
	cmd := bsoncore.NewDocumentBuilder().
		AppendInt32("ping", 1).
		AppendString("pad", string(bytes.Repeat([]byte{'p'}, filler))).
		AppendString("$db", db).Build()
	body = append(append(body, 0), cmd...)
	return message(requestID, 0, opMsg, body)
}

// sleeps records the delays a proxy was asked to wait, without waiting.
type sleeps struct {
	mu sync.Mutex
	ds []time.Duration
}

func (s *sleeps) sleep(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ds = append(s.ds, d)
	return true
}

func (s *sleeps) got() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.ds...)
}

// pipeThrough runs a proxyConn's pipe from a src to a dst pipe and returns
// the ends the test writes to and reads from.
func pipeThrough(t *testing.T, c *proxyConn, fromServer bool) (in io.WriteCloser, out io.Reader) {
	srcW, src := net.Pipe()
	dst, dstR := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.pipe(dst, src, fromServer)
	}()
	t.Cleanup(func() {
		_ = srcW.Close()
		_ = dstR.Close()
		<-done
	})
	return srcW, dstR
}

// TestProxyDelaysEachMessageOnce: a large reply written a few bytes at a
// time is forwarded whole, held once for the latency, not once per read.
func TestProxyDelaysEachMessageOnce(t *testing.T) {
	p := newProxy(nil, "")
	var s sleeps
	p.sleep = s.sleep
	p.SetLatency(5 * time.Millisecond)
	c := &proxyConn{p: p, pending: map[int32]time.Duration{}}
	in, out := pipeThrough(t, c, true)

	var msgs [][]byte
	for i, size := range []int{200 << 10, 17, 64 << 10} {
		msgs = append(msgs, message(int32(100+i), int32(i), 1, bytes.Repeat([]byte{byte(i + 1)}, size)))
	}
	go func() {
		for _, m := range msgs {
			for len(m) > 0 { // dribbled, 1,000 bytes at a time
				n := min(len(m), 1000)
				if _, err := in.Write(m[:n]); err != nil {
					return
				}
				m = m[n:]
			}
		}
	}()
	for i, want := range msgs {
		got := make([]byte, len(want))
		if _, err := io.ReadFull(out, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d changed on its way", i)
		}
	}
	if got := s.got(); len(got) != len(msgs) {
		t.Fatalf("waited %d times for %d messages: %v", len(got), len(msgs), got)
	}
}

// TestProxyDelaysRepliesPerDatabase: the reply to a command on a database
// with a delay is held for the delay and the latency; other replies for
// the latency only.
func TestProxyDelaysRepliesPerDatabase(t *testing.T) {
	p := newProxy(nil, "")
	var s sleeps
	p.sleep = s.sleep
	p.SetLatency(time.Millisecond)
	p.SetDatabaseDelay("user_noisy_db", 20*time.Millisecond)
	c := &proxyConn{p: p, pending: map[int32]time.Duration{}}
	toServer, atServer := pipeThrough(t, c, false)
	fromServer, atClient := pipeThrough(t, c, true)

	relay := func(msg []byte, r io.Reader, w io.Writer) {
		t.Helper()
		go func() { _, _ = w.Write(msg) }()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatal("a message changed on its way")
		}
	}
	relay(opMsgOn(1, "user_noisy_db", 40<<10), atServer, toServer)
	relay(opMsgOn(2, "user_light_db", 10), atServer, toServer)
	relay(message(3, 0, 2004, []byte("legacy op")), atServer, toServer)
	relay(message(50, 2, opMsg, []byte("reply")), atClient, fromServer)
	relay(message(51, 1, opMsg, []byte("reply")), atClient, fromServer)
	relay(message(52, 3, 1, []byte("reply")), atClient, fromServer)
	relay(message(53, 1, opMsg, []byte("again")), atClient, fromServer) // a request's delay applies once

	want := []time.Duration{time.Millisecond, 21 * time.Millisecond, time.Millisecond, time.Millisecond}
	got := s.got()
	if len(got) != len(want) {
		t.Fatalf("waits %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}

	p.SetDatabaseDelay("user_noisy_db", 0)
	if d := p.requestDelay(opMsgOn(4, "user_noisy_db", 0)); d != 0 {
		t.Fatalf("delay %v after it was removed", d)
	}
}

// TestProxyRefusesMalformedMessages: a length that cannot be a message
// ends the connection instead of making the proxy allocate it.
func TestProxyRefusesMalformedMessages(t *testing.T) {
	for _, n := range []uint32{0, 15, 1 << 31, maxMessage + 1} {
		var hdr [headerLen]byte
		binary.LittleEndian.PutUint32(hdr[:], n)
		if _, err := readMessage(bytes.NewReader(hdr[:]), nil); err != errBadMessage {
			t.Errorf("length %d: %v, want errBadMessage", n, err)
		}
	}
	for _, body := range [][]byte{nil, {0, 0, 0}, {0, 0, 0, 0, 0, 9, 0, 0, 0}, {0, 0, 0, 0, 0, 5, 0, 0, 0, 0}} {
		if db, ok := opMsgDatabase(body); ok {
			t.Errorf("body %v: $db %q", body, db)
		}
	}
}

// TestProxyDialsOffTheAcceptLoop: a client whose server connection is slow
// to dial does not hold up another client.
func TestProxyDialsOffTheAcceptLoop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(ln, "upstream")
	release := make(chan struct{})
	dialled := make(chan net.Conn, 2)
	var calls int
	var mu sync.Mutex
	p.dial = func(string) (net.Conn, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			<-release // the first dial hangs until the test is done
		}
		ours, theirs := net.Pipe()
		dialled <- theirs
		return ours, nil
	}
	p.wg.Add(1)
	go p.accept()
	defer func() {
		close(release)
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		_ = (<-dialled).Close() // the hung dial's, made once released
	}()

	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	// Whichever client's dial came first hangs; the other's goes through.
	server := <-dialled
	m1, m2 := message(1, 0, opMsg, []byte("from c1")), message(1, 0, opMsg, []byte("from c2"))
	go func() { _, _ = c1.Write(m1) }()
	go func() { _, _ = c2.Write(m2) }()
	got := make([]byte, len(m1))
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, m1) && !bytes.Equal(got, m2) {
		t.Fatal("message changed on its way")
	}
}
