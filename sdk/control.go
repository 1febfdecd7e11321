package sdk

import (
	"errors"
	"io"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// The pair's control channel "switchboard": the offering side opens it so that every pair
// negotiates a connection before the application adds anything. Nothing is sent on it (the
// QUIC exchange goes through the server, quic_signal.go); what a remote peer sends on it is
// read and dropped, so that it cannot hold the association's receive buffer.

// watchControl keeps the pair's control channel: with SettingEngine.DetachDataChannels it
// detaches it and drains it.
func (p *Peer) watchControl(dc *webrtc.DataChannel) {
	dc.OnOpen(func() {
		if rwc, err := dc.Detach(); err == nil {
			p.drainDetachedControl(rwc)
		}
	})
}

// drainDetachedControl reads a detached control channel until the connection closes.
func (p *Peer) drainDetachedControl(rwc datachannel.ReadWriteCloser) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.detachedClosed {
		_ = rwc.Close()
		return
	}
	p.detached = rwc
	p.detachedWG.Add(1)
	go func() {
		defer p.detachedWG.Done()
		buf := make([]byte, 2048)
		for {
			if _, _, err := rwc.ReadDataChannel(buf); err != nil && !errors.Is(err, io.ErrShortBuffer) {
				return // the connection closed
			}
		}
	}()
}

// stopDetachedControl ends the detached control reader; the connection is closed already.
func (p *Peer) stopDetachedControl() {
	p.mu.Lock()
	p.detachedClosed = true
	rwc := p.detached
	p.mu.Unlock()
	if rwc != nil {
		_ = rwc.Close()
	}
	p.detachedWG.Wait()
}
