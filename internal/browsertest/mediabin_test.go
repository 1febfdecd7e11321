package browsertest

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMediaBinaries is TestMediaInterop through the real binaries: `switchboard record`
// records the web app's fake camera into a VP8 IVF, then `switchboard stream` plays that
// recording into a page of the web app, which must decode it.
func TestMediaBinaries(t *testing.T) {
	base, browser := appBrowser(t, 90*time.Second)
	bin := buildCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	t0 := time.Now()

	// (a) Page camera → `switchboard record`.
	dir := t.TempDir()
	rec := startCLI(t, ctx, bin, "record", "--room", "mediabin-rec", "--out", dir, "--server", base, "--loopback")
	cam := openApp(t, browser, "P1", base+"/r/mediabin-rec?name=P1", 1024, 768)
	cam.waitFor(`document.body.dataset.joined === 'true' && document.querySelector('.tile[data-peer]')?.dataset.state === 'connected'`, "the recorder connected")
	// The camera is being sent once the connection carries video out.
	cam.waitFor(`(async () => {
		let sent = 0;
		for (const peer of window.switchboardApp.client.peers.values())
			(await peer.pc.getStats()).forEach((s) => { if (s.type === 'outbound-rtp' && s.kind === 'video') sent += s.framesEncoded || 0; });
		return sent > 0;
	})()`, "the camera sent")
	time.Sleep(3 * time.Second)
	if err := rec.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(t, 15*time.Second); err != nil {
		t.Fatalf("switchboard record: %v (want exit 0 on SIGINT)\n%s\npage console errors: %v", err, rec.out.String(), cam.errors())
	}
	ivfs, _ := filepath.Glob(filepath.Join(dir, "*.ivf"))
	if len(ivfs) != 1 {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("want one .ivf in %s, found %v (dir: %v)\nrecord output:\n%s", dir, ivfs, entries, rec.out.String())
	}
	hdr, frames := readIVF(t, ivfs[0])
	if hdr.fourcc != "VP80" || frames <= 0 || hdr.width == 0 || hdr.height == 0 {
		t.Fatalf("%s: %+v, %d frames: want VP8 with frames\nrecord output:\n%s", ivfs[0], hdr, frames, rec.out.String())
	}
	t.Logf("record: %s %dx%d, %d frames after %v\n%s", hdr.fourcc, hdr.width, hdr.height, frames,
		time.Since(t0).Round(time.Millisecond), strings.TrimSpace(rec.out.String()))

	// (b) The recording → `switchboard stream` → a page. --loop keeps it going until SIGINT, so
	// the page's check does not race the end of a 3 s file.
	viewer := openApp(t, browser, "P2", base+"/r/mediabin-play?name=P2", 1024, 768)
	viewer.waitFor(`document.body.dataset.joined === 'true'`, "joined")
	stream := startCLI(t, ctx, bin, "stream", ivfs[0], "--loop", "--room", "mediabin-play", "--server", base, "--loopback")
	labels := viewer.waitVideos(1)
	v := appEval[map[string]float64](viewer, `(async () => {
		const tile = document.querySelector('.tile[data-peer]');
		const peer = window.switchboardApp.client.peers.get(tile.dataset.peer);
		let frames = 0;
		(await peer.pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
		const v = tile.querySelector('video');
		return { framesDecoded: frames, width: v.videoWidth, height: v.videoHeight };
	})()`)
	if v["framesDecoded"] <= 0 || v["width"] <= 0 {
		t.Fatalf("viewer decoded nothing: %v", v)
	}
	t.Logf("stream → page: %v decodes %vx%v, %v frames after %v", labels, v["width"], v["height"], v["framesDecoded"],
		time.Since(t0).Round(time.Millisecond))
	if err := stream.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := stream.wait(t, 15*time.Second); err != nil {
		t.Fatalf("switchboard stream: %v (want exit 0 on SIGINT)\n%s", err, stream.out.String())
	}
	t.Logf("stream output:\n%s", strings.TrimSpace(stream.out.String()))
	for _, p := range []*appTab{cam, viewer} {
		if errs := p.errors(); len(errs) > 0 {
			t.Errorf("%s console errors: %v", p.name, errs)
		}
	}
}

type ivfHeader struct {
	fourcc        string
	width, height uint16
	rate, scale   uint32
	count         uint32 // frame count as the header states it
}

// readIVF parses an IVF file: its 32-byte header, then every frame's 12-byte header (size,
// timestamp) and payload. It returns the header and the number of complete frames.
func readIVF(t *testing.T, path string) (ivfHeader, int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 32 || string(b[0:4]) != "DKIF" {
		t.Fatalf("%s: not an IVF file: % x", path, b[:min(len(b), 32)])
	}
	le := binary.LittleEndian
	if v := le.Uint16(b[4:]); v != 0 {
		t.Fatalf("%s: IVF version %d", path, v)
	}
	hlen := int(le.Uint16(b[6:]))
	if hlen < 32 || hlen > len(b) {
		t.Fatalf("%s: IVF header length %d", path, hlen)
	}
	h := ivfHeader{fourcc: string(b[8:12]), width: le.Uint16(b[12:]), height: le.Uint16(b[14:]),
		rate: le.Uint32(b[16:]), scale: le.Uint32(b[20:]), count: le.Uint32(b[24:])}
	frames := 0
	var last uint64
	for off := hlen; off < len(b); frames++ {
		if len(b)-off < 12 {
			t.Fatalf("%s: frame %d: truncated frame header at %d", path, frames, off)
		}
		size, ts := int(le.Uint32(b[off:])), le.Uint64(b[off+4:])
		if size == 0 || size > len(b)-off-12 {
			t.Fatalf("%s: frame %d at %d: size %d, %d bytes left", path, frames, off, size, len(b)-off-12)
		}
		if frames > 0 && ts < last {
			t.Errorf("%s: frame %d: timestamp %d before %d", path, frames, ts, last)
		}
		if frames == 0 && h.fourcc == "VP80" && b[off+12]&1 != 0 {
			t.Errorf("%s: the first frame is not a keyframe", path)
		}
		last = ts
		off += 12 + size
	}
	if h.count != 0 && int(h.count) != frames {
		t.Errorf("%s: header says %d frames, file has %d", path, h.count, frames)
	}
	return h, frames
}
