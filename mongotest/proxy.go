package mongotest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a single-host server, for
// latency and fault injection in tests and benchmarks. Clients connect to
// [Proxy.URI]. It forwards whole wire-protocol messages, so that a delay
// applies to each reply, however the bytes arrive. It is safe for
// concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	latency  atomic.Int64 // ns added before forwarding each message from the server
	opened   atomic.Int64 // connections accepted
	open     atomic.Int64 // connections open now

	delayMu sync.RWMutex             // guards delays
	delays  map[string]time.Duration // per database: added to the replies to its commands

	done chan struct{} // closed by Close: delayed replies stop waiting

	// dial and sleep are net.DialTimeout and wait; tests replace them.
	dial  func(addr string) (net.Conn, error)
	sleep func(d time.Duration) bool

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop, each connection's dialler and its two copiers
}

// NewProxy starts a proxy for the server at uri, which must name one host.
func NewProxy(uri string) (*Proxy, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mongotest: proxy needs a mongodb://host:port URI")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mongotest: proxy: %w", err)
	}
	p := newProxy(ln, u.Host)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

func newProxy(ln net.Listener, upstream string) *Proxy {
	p := &Proxy{ln: ln, upstream: upstream, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	p.dial = func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
	p.sleep = p.wait
	return p
}

// URI returns the proxy's connection string.
func (p *Proxy) URI() string { return "mongodb://" + p.ln.Addr().String() + "/" }

// SetLatency delays every message the server sends by d, so every round
// trip, handshakes and heartbeats included, takes at least d longer.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetDatabaseDelay delays the server's reply to every command on database
// db by d, on top of the latency: a per-tenant server cost that uses no
// CPU, the connection held as by a slow query. The proxy reads the
// database from each OP_MSG's $db field; other messages are not delayed.
// d 0 removes the delay.
func (p *Proxy) SetDatabaseDelay(db string, d time.Duration) {
	p.delayMu.Lock()
	defer p.delayMu.Unlock()
	if d <= 0 {
		delete(p.delays, db)
		return
	}
	if p.delays == nil {
		p.delays = make(map[string]time.Duration)
	}
	p.delays[db] = d
}

// delayOf returns the delay set for db.
func (p *Proxy) delayOf(db string) time.Duration {
	p.delayMu.RLock()
	defer p.delayMu.RUnlock()
	return p.delays[db]
}

// Opened returns the number of connections clients have opened through the
// proxy, monitoring connections included.
func (p *Proxy) Opened() int64 { return p.opened.Load() }

// Open returns the number of client connections open through the proxy
// now, monitoring connections included: the sockets the server would hold.
func (p *Proxy) Open() int64 { return p.open.Load() }

// Close stops the proxy, cuts every connection and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// accept accepts connections and hands each to a goroutine that dials the
// server: a slow dial must not hold up the next client.
func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.opened.Add(1)
		if !p.track(client) {
			return
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// serve dials the server for client and copies between them.
func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.open.Add(1)
	defer p.open.Add(-1)
	server, err := p.dial(p.upstream)
	if err != nil {
		p.forget(client)
		return
	}
	if !p.track(server) {
		p.forget(client)
		return
	}
	c := &proxyConn{p: p, pending: make(map[int32]time.Duration)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		c.pipe(server, client, false)
	}()
	c.pipe(client, server, true)
}

// track registers a connection, or closes it if the proxy is closing.
func (p *Proxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = conn.Close()
		return false
	}
	p.conns[conn] = struct{}{}
	return true
}

func (p *Proxy) forget(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// A proxyConn is one client connection and its server connection.
type proxyConn struct {
	p *Proxy

	mu      sync.Mutex              // guards pending
	pending map[int32]time.Duration // request ID → the delay of its reply
}

// Wire protocol: a message starts with its length, request ID, the ID of
// the request it answers, and its op code.
const (
	headerLen  = 16
	opMsg      = 2013
	maxMessage = 48_000_000 + headerLen // the server's maxMessageSizeBytes, with room
)

var errBadMessage = errors.New("mongotest: proxy: malformed message")

// pipe forwards whole messages from src to dst: from the client, it notes
// the delay of each request's reply; from the server, it holds each
// message for the latency and the delay of the request it answers. Either
// side ending closes both.
func (c *proxyConn) pipe(dst, src net.Conn, fromServer bool) {
	defer c.p.forget(dst, src)
	var buf []byte
	for {
		var err error
		if buf, err = readMessage(src, buf); err != nil {
			return // EOF, a malformed message, or the other side closed
		}
		if fromServer {
			d := time.Duration(c.p.latency.Load()) + c.takeDelay(int32(binary.LittleEndian.Uint32(buf[8:])))
			if d > 0 && !c.p.sleep(d) {
				return
			}
		} else if d := c.p.requestDelay(buf); d > 0 {
			c.mu.Lock()
			c.pending[int32(binary.LittleEndian.Uint32(buf[4:]))] = d
			c.mu.Unlock()
		}
		if _, err := dst.Write(buf); err != nil {
			return
		}
	}
}

// takeDelay returns and forgets the delay of the reply to request id.
func (c *proxyConn) takeDelay(id int32) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	}
	return d
}

// wait waits d, or until the proxy closes; it reports false if it closed.
func (p *Proxy) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.done:
		return false
	}
}

// requestDelay returns the delay of the reply to request msg: the delay
// of its OP_MSG's $db, if any.
func (p *Proxy) requestDelay(msg []byte) time.Duration {
	p.delayMu.RLock()
	none := len(p.delays) == 0
	p.delayMu.RUnlock()
	if none || binary.LittleEndian.Uint32(msg[12:]) != opMsg {
		return 0
	}
	db, ok := opMsgDatabase(msg[headerLen:])
	if !ok {
		return 0
	}
	return p.delayOf(db)
}

// opMsgDatabase returns the $db of an OP_MSG body: flag bits, then
// sections, one of kind 0 holding the command document.
func opMsgDatabase(body []byte) (string, bool) {
	if len(body) < 4 {
		return "", false
	}
	rest := body[4:]
	for len(rest) > 0 {
		kind := rest[0]
		rest = rest[1:]
		if len(rest) < 4 {
			return "", false
		}
		size := int(binary.LittleEndian.Uint32(rest))
		if size < 4 || size > len(rest) {
			return "", false
		}
		if kind == 0 {
			v, err := bsoncore.Document(rest[:size]).LookupErr("$db")
			if err != nil {
				return "", false
			}
			return v.StringValueOK()
		}
		rest = rest[size:] // kind 1: a document sequence, sized the same way
	}
	return "", false
}

// readMessage reads one whole message into buf, grown if needed.
func readMessage(r io.Reader, buf []byte) ([]byte, error) {
	var header [headerLen]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return buf, err
	}
	n := int(int32(binary.LittleEndian.Uint32(header[:])))
	if n < headerLen || n > maxMessage {
		return buf, errBadMessage
	}
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	copy(buf, header[:])
	if _, err := io.ReadFull(r, buf[headerLen:]); err != nil {
		return buf, err
	}
	return buf, nil
}
