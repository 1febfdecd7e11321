package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchboard-rtc/switchboard/internal/stats"
	"github.com/switchboard-rtc/switchboard/protocol"
)

// Handler returns an http.Handler serving st (plus Go runtime and process metrics, and the
// extra collectors, such as TURN) in the Prometheus text format.
func Handler(st *stats.Stats, extra ...prometheus.Collector) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{st: st},
		webhookCollector{st: st},
		edgesCollector{st: st},
		timeoutCollector{st: st},
		clientsCollector{st: st},
	)
	reg.MustRegister(extra...)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("switchboard_"+name, help, labels, nil)
}

var (
	descConnections        = desc("connections", "Open signaling connections.")
	descHandshakes         = desc("handshakes_total", "WebSocket handshakes by result.", "result")
	descRooms              = desc("rooms", "Rooms with at least one peer.")
	descPeers              = desc("peers", "Peers joined to a room.")
	descRelayed            = desc("messages_relayed_total", "Messages relayed to a peer, by type.", "type")
	descErrors             = desc("errors_total", "Error frames sent, by code.", "code")
	descBytes              = desc("bytes_total", "WebSocket payload bytes, by direction.", "direction")
	descSendQueueDrop      = desc("send_queue_drops_total", "Peers dropped because their send queue overflowed.")
	descKicks              = desc("kicks_total", "Connections closed for exceeding the rate limit.")
	descPanics             = desc("panics_total", "Recovered panics while handling a connection.")
	descLoopSlices         = desc("loop_slices_total", "Batches of ready connections an event loop cut short after its 2 ms slice, to write what it relayed and serve the others.")
	descParked             = desc("resumable_peers", "Peers whose connection was lost, kept for resumption.")
	descResumes            = desc("resumes_total", "Lost connections' presences, by outcome.", "result")
	descSIOSessions        = desc("socketio_sessions", "Open Engine.IO sessions on /socket.io/ (WebSocket ones are also connections).")
	descSIOUpgrades        = desc("socketio_upgrades_total", "Engine.IO sessions upgraded from long-polling to WebSocket.")
	descSIOParked          = desc("socketio_parked", "Socket.IO sockets kept after a lost connection for their client to recover.")
	descSIOParkRefused     = desc("socketio_park_refused_total", "Socket.IO sockets not kept after a lost connection: as many as the sessions cap were parked.")
	descSIORecoveries      = desc("socketio_recoveries_total", "Socket.IO connection state recoveries, by outcome: recovered, gap (same socket, events lost: not recovered), refused (unknown or forged pid, socket gone).", "outcome")
	descClusterHeld        = desc("cluster_held_events", "Relays this cluster node holds for peers orphaned by a restarting or dead node, until they resume elsewhere.")
	descClusterHeldDropped = desc("cluster_held_dropped_total", "Relays for orphaned peers refused because a hold was full, or dropped when the peer left without resuming.")
)

// collector reads the atomics at scrape time: nothing is added to the hot paths.
type collector struct{ st *stats.Stats }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descHandshakes, descRooms, descPeers, descRelayed,
		descErrors, descBytes, descSendQueueDrop, descKicks, descPanics, descLoopSlices, descParked, descResumes, descSIOSessions, descSIOUpgrades, descSIOParked, descSIOParkRefused, descSIORecoveries,
		descClusterHeld, descClusterHeldDropped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.st
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descConnections, st.Connections.Load())
	counter(descHandshakes, st.Handshakes.Load(), "accepted")
	counter(descHandshakes, st.HandshakesRefused.Load(), "refused")
	gauge(descRooms, st.Rooms.Load())
	gauge(descPeers, st.Peers.Load())
	for t := protocol.TypeOffer; t <= protocol.TypeMessage; t++ {
		counter(descRelayed, st.Relayed[t].Load(), t.String())
	}
	for code := protocol.Code(0); int(code) < protocol.NumCodes; code++ {
		counter(descErrors, st.Errors[code].Load(), code.String())
	}
	counter(descBytes, st.BytesIn.Load(), "in")
	counter(descBytes, st.BytesOut.Load(), "out")
	counter(descSendQueueDrop, st.SendQueueDrops.Load())
	counter(descKicks, st.Kicks.Load())
	counter(descPanics, st.Panics.Load())
	counter(descLoopSlices, st.LoopSlices.Load())
	gauge(descParked, st.Parked.Load())
	counter(descResumes, st.Resumes.Load(), "resumed")
	counter(descResumes, st.ResumesExpired.Load(), "expired")
	counter(descResumes, st.ResumesRefused.Load(), "refused")
	counter(descResumes, st.Restores.Load(), "restored")
	gauge(descSIOSessions, st.SocketIOSessions.Load())
	counter(descSIOUpgrades, st.SocketIOUpgrades.Load())
	gauge(descSIOParked, st.SocketIOParked.Load())
	counter(descSIOParkRefused, st.SocketIOParkRefused.Load())
	counter(descSIORecoveries, st.SocketIORecovered.Load(), "recovered")
	counter(descSIORecoveries, st.SocketIORecoveryGaps.Load(), "gap")
	counter(descSIORecoveries, st.SocketIORecoveryRefused.Load(), "refused")
	gauge(descClusterHeld, st.ClusterHeld.Load())
	counter(descClusterHeldDropped, st.ClusterHeldDropped.Load())
}
