package server

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Connections bounds what clients' connections hold on each port, so that
// connections opened and left idle, or held by a few addresses, cost
// little: beyond a cap a connection is closed as soon as it is accepted,
// and one that does nothing is closed after a timeout. The defaults are
// far above what a letter going viral, a bulk import or the benchmark
// need from one address.
type Connections struct {
	// PerAddress is the most connections one client address may have
	// open to each port; more are closed as they are accepted. 0 means
	// 512.
	PerAddress int
	// Max is the most connections open to each port, from all addresses;
	// 0 means 8,192.
	Max int
	// IdleTimeout closes a connection with nothing in progress for that
	// long: an HTTP keep-alive connection between requests, a gRPC
	// connection without calls. 0 means 2 minutes.
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the time from accepting a connection to its
	// first request: on HTTP, the request's headers; on gRPC, the TLS
	// handshake and the HTTP/2 preface. 0 means 10 seconds.
	HandshakeTimeout time.Duration
	// ReadTimeout bounds the reading of an HTTP request, its body
	// included, and WriteTimeout the writing of its response; 0 means
	// 30 seconds and 5 minutes (the web page's WebAssembly on a slow
	// mobile connection).
	ReadTimeout, WriteTimeout time.Duration
	// MaxHeaderBytes bounds the headers of an HTTP request and the header
	// list of a gRPC call; 0 means 64 KiB.
	MaxHeaderBytes int
}

func (c *Connections) setDefaults() {
	if c.PerAddress <= 0 {
		c.PerAddress = 512
	}
	if c.Max <= 0 {
		c.Max = 8192
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Minute
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
}

// The keepalive policy of the gRPC port: a client may ping at most every
// keepaliveMinTime, with or without calls in progress (more often, and
// the connection is closed: gRPC's "too many pings"); the server pings a
// connection silent for keepaliveTime, and closes it when the answer
// takes longer than keepaliveTimeout (a client gone without a word).
const (
	keepaliveMinTime = 20 * time.Second
	keepaliveTime    = time.Minute
	keepaliveTimeout = 20 * time.Second
)

// grpcConnectionOptions are the options of the gRPC server that bound its
// connections: the one place where they are set.
func (s *Server) grpcConnectionOptions() []grpc.ServerOption {
	c := s.cfg.Connections
	return []grpc.ServerOption{
		grpc.MaxConcurrentStreams(s.cfg.MaxStreamsPerConnection),
		grpc.MaxHeaderListSize(uint32(c.MaxHeaderBytes)),
		grpc.ConnectionTimeout(c.HandshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     c.IdleTimeout,
			MaxConnectionAge:      s.cfg.MaxConnectionAge,
			MaxConnectionAgeGrace: s.cfg.MaxConnectionAgeGrace,
			Time:                  keepaliveTime,
			Timeout:               keepaliveTimeout,
		}),
	}
}

// connMetrics count the connections of the ports.
type connMetrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
}

func newConnMetrics(reg prometheus.Registerer) *connMetrics {
	m := &connMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "undersigned_connections_open",
			Help: "Connections open, by port (grpc, http).",
		}, []string{"port"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "undersigned_connections_refused_total",
			Help: "Connections closed as they were accepted, by port and cap (address, total).",
		}, []string{"port", "cap"}),
	}
	reg.MustRegister(m.open, m.refused)
	return m
}

// limitListener closes, as soon as it accepts them, the connections
// beyond the caps of one port: per client address, and in all.
type limitListener struct {
	net.Listener
	perAddress, max int
	open            prometheus.Gauge
	refusedAddress  prometheus.Counter
	refusedTotal    prometheus.Counter

	mu     sync.Mutex
	total  int
	byAddr map[string]int
}

// limitConnections returns l with the caps of cfg, counting in m under
// the port's name.
func limitConnections(l net.Listener, cfg Connections, m *connMetrics, port string) *limitListener {
	return &limitListener{
		Listener: l, perAddress: cfg.PerAddress, max: cfg.Max, byAddr: map[string]int{},
		open:           m.open.WithLabelValues(port),
		refusedAddress: m.refused.WithLabelValues(port, "address"),
		refusedTotal:   m.refused.WithLabelValues(port, "total"),
	}
}

// Accept returns the next connection within the caps.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		over := l.refusedAddress
		if l.total >= l.max {
			over = l.refusedTotal
		} else if l.byAddr[host] < l.perAddress {
			l.total++
			l.byAddr[host]++
			over = nil
		}
		l.mu.Unlock()
		if over != nil {
			over.Inc()
			c.Close()
			continue
		}
		l.open.Inc()
		return &countedConn{Conn: c, release: func() { l.release(host) }}, nil
	}
}

func (l *limitListener) release(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byAddr[host]--; l.byAddr[host] <= 0 {
		delete(l.byAddr, host)
	}
	l.open.Dec()
}

// countedConn is a connection counted by a limitListener until it is
// closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
