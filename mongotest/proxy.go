package mongotest

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a single-host server, for
// latency and fault injection in tests and benchmarks. Clients connect to
// [Proxy.URI]. It is safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	latency  atomic.Int64 // ns added before forwarding each read from the server
	opened   atomic.Int64 // connections accepted

	mu     sync.Mutex // protects conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and two copiers per connection
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
	p := &Proxy{ln: ln, upstream: u.Host, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// URI returns the proxy's connection string.
func (p *Proxy) URI() string { return "mongodb://" + p.ln.Addr().String() + "/" }

// SetLatency delays everything the server sends by d, so every round trip,
// handshakes and heartbeats included, takes at least d longer.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Opened returns the number of connections clients have opened through the
// proxy, monitoring connections included.
func (p *Proxy) Opened() int64 { return p.opened.Load() }

// Close stops the proxy, cuts every connection and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.opened.Add(1)
		server, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		if !p.track(client, server) {
			return
		}
		p.wg.Add(2)
		go p.pipe(server, client, false)
		go p.pipe(client, server, true)
	}
}

// track registers a connection pair, or closes it if the proxy is closing.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		if p.closed {
			_ = c.Close()
			continue
		}
		p.conns[c] = struct{}{}
	}
	return !p.closed
}

// pipe copies src to dst, adding the latency to what the server sends.
// Either side ending closes both.
func (p *Proxy) pipe(dst, src net.Conn, fromServer bool) {
	defer p.wg.Done()
	defer p.forget(dst, src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if d := p.latency.Load(); fromServer && d > 0 {
				time.Sleep(time.Duration(d))
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF, or the other side closed
		}
	}
}

func (p *Proxy) forget(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}
