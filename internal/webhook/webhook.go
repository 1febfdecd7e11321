package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-rtc/switchboard/internal/auth"
	"github.com/switchboard-rtc/switchboard/internal/bus"
	"github.com/switchboard-rtc/switchboard/internal/stats"
)

// Config configures a Sender. URLs and Key are required; the zero value of every other field
// means its default.
type Config struct {
	// URLs receive every event (http:// or https://).
	URLs []string
	// Key signs the bodies; its id goes in the Switchboard-Key-Id header.
	Key auth.Key
	// Timeout bounds one attempt, from connecting to reading the answer (default 5s).
	Timeout time.Duration
	// Queue is how many events may wait per URL, the one being sent included (default 10000).
	// When a new event finds the queue full the oldest is dropped.
	Queue int
	// MinBackoff is the wait before the first retry (default 250ms); each retry doubles it up
	// to MaxBackoff (default 30s). The wait actually used is drawn from its upper half.
	MinBackoff, MaxBackoff time.Duration
	// Stats receives the webhook counters; nil means a private set.
	Stats *stats.Stats
	// Logger is the Sender's logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Queue == 0 {
		c.Queue = 10000
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 250 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Stats == nil {
		c.Stats = new(stats.Stats)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if len(c.URLs) == 0 {
		return fmt.Errorf("%w: no URL", ErrBadConfig)
	}
	for _, raw := range c.URLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: %s is not an http:// or https:// URL", ErrBadConfig, Redact(raw))
		}
	}
	switch {
	case c.Key.ID == "" || len(c.Key.Secret) == 0:
		return fmt.Errorf("%w: no signing key", ErrBadConfig)
	case c.Timeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("%w: negative timeout or backoff, or max backoff below min", ErrBadConfig)
	case c.Queue < 0:
		return fmt.Errorf("%w: negative queue", ErrBadConfig)
	}
	return nil
}

// Sender delivers room events to webhook URLs. It is a bus.Observer.
type Sender struct {
	cfg     Config
	log     *slog.Logger
	stats   *stats.Stats
	client  *http.Client
	targets []*target

	// ctx is canceled when Shutdown's deadline passes (or by Close): attempts and backoff
	// waits end at once and what is left is dropped.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// lost counts the events dropped because the Sender stopped.
	lost atomic.Int64

	stopOnce sync.Once
}

var _ bus.Observer = (*Sender)(nil)

// New starts a Sender: one delivery goroutine per URL, until Shutdown or Close.
func New(cfg Config) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = len(cfg.URLs)
	s := &Sender{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "webhook"),
		stats: cfg.Stats,
		client: &http.Client{
			Transport: tr,
			// A redirect is answered, not followed: a signed body goes only where it was
			// configured to.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for _, u := range cfg.URLs {
		t := &target{s: s, url: u, logURL: Redact(u), wake: make(chan struct{}, 1), kick: make(chan struct{}, 1)}
		s.targets = append(s.targets, t)
	}
	s.wg.Add(len(s.targets))
	for _, t := range s.targets {
		go t.run()
	}
	return s, nil
}

// RoomEvent implements bus.Observer: it queues e for every URL and returns at once.
func (s *Sender) RoomEvent(e *bus.RoomEvent) {
	it := newItem(e)
	for _, t := range s.targets {
		t.push(it)
	}
}

// Shutdown stops taking events and waits, within ctx, for those queued to be delivered (or
// refused). When ctx ends first, the attempts under way are cut short and the rest is dropped
// (counted); Shutdown then returns an error saying how many events were not delivered.
// Every goroutine of the Sender has ended when it returns.
func (s *Sender) Shutdown(ctx context.Context) error {
	for _, t := range s.targets {
		t.close()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.stop()
		<-done
		err = fmt.Errorf("webhook: %d events not delivered before shutdown: %w", s.lost.Load(), ctx.Err())
	}
	s.stop()
	return err
}

// Close stops at once: the attempts under way are cut short and every event not yet delivered
// is dropped (counted). It returns after the Sender's goroutines have ended.
func (s *Sender) Close() error {
	for _, t := range s.targets {
		t.close()
	}
	s.stop()
	s.wg.Wait()
	return nil
}

func (s *Sender) stop() {
	s.stopOnce.Do(func() {
		s.cancel()
		s.client.CloseIdleConnections()
	})
}
