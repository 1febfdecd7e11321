package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatCPU(t *testing.T) {
	tail := " S 1 4797 4797 0 -1 4194560 28914 0 0 0 %s 0 0 20 0 11 0 123456 1157459968 45678 18446744073709551615 0 0 0 0 0 0 0 16781312 134235650 0 0 0 17 1 0 0 0 0 0"
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "4797 (node)" + strings.Replace(tail, "%s", "1082 57", 1), 11390 * time.Millisecond, false},
		{"comm with spaces and parens", "12 (my (weird) proc)" + strings.Replace(tail, "%s", "3 4", 1), 70 * time.Millisecond, false},
		{"zero", "1 (x)" + strings.Replace(tail, "%s", "0 0", 1), 0, false},
		{"no paren", "12 node S 1", 0, true},
		{"truncated", "12 (node) S 1 2 3", 0, true},
		{"not a number", "1 (x)" + strings.Replace(tail, "%s", "abc 0", 1), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseProcStatusRSS(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    int64
		wantErr bool
	}{
		{"typical", "Name:\tnode\nVmPeak:\t 1200000 kB\nVmRSS:\t   72360 kB\nRssAnon:\t 40000 kB\n", 72360, false},
		{"first line", "VmRSS: 5 kB\n", 5, false},
		{"no unit", "VmRSS:\t7\n", 7, false},
		{"missing (kernel thread)", "Name:\tkthreadd\nState:\tS\n", 0, true},
		{"bad unit", "VmRSS:\t7 MB\n", 0, true},
		{"bad number", "VmRSS:\tx kB\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatusRSS([]byte(tt.status))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestProcSelf(t *testing.T) {
	pid := os.Getpid()
	if _, err := procCPU(pid); err != nil {
		t.Fatalf("procCPU(self): %v", err)
	}
	kb, err := procRSS(pid)
	if err != nil {
		t.Fatalf("procRSS(self): %v", err)
	}
	if kb <= 0 {
		t.Errorf("RSS %d kB, want > 0", kb)
	}
	if _, err := procCPU(1 << 30); err == nil {
		t.Error("procCPU of a missing pid: want an error")
	}
	if _, ok, err := (serverProbe{}).cpu(); ok || err != nil {
		t.Errorf("probe without pid: ok=%v err=%v, want false, nil", ok, err)
	}
}

func TestParseProcStatBusy(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"typical", "cpu  100 5 50 9000 30 2 3 1 0 0\ncpu0 50 2 25 4500 15 1 1 0 0 0\n", 161 * 10 * time.Millisecond, false},
		{"no guest fields", "cpu  1 0 1 5 0 0 0 0\n", 20 * time.Millisecond, false},
		{"per-cpu line first", "cpu0 1 2 3 4 5 6 7 8\n", 0, true},
		{"short", "cpu  1 2 3\n", 0, true},
		{"bad number", "cpu  x 0 0 0 0 0 0 0 0 0\n", 0, true},
		{"empty", "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProcStatBusy([]byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	if machineBusy() <= 0 {
		t.Error("machineBusy() <= 0 on this machine")
	}
}

func TestDiffCPU(t *testing.T) {
	s := time.Second
	tests := []struct {
		name string
		a, b cpuSample
		want cpuWindow
	}{
		{"all accounted", cpuSample{server: 1 * s, serverOK: true, self: 2 * s, machine: 10 * s},
			cpuSample{server: 3 * s, serverOK: true, self: 3 * s, machine: 15 * s},
			cpuWindow{server: 2 * s, self: 1 * s, other: 2 * s, serverOK: true}},
		{"clock granularity makes other negative", cpuSample{self: 0, machine: 0},
			cpuSample{self: 2 * s, machine: 1 * s},
			cpuWindow{self: 2 * s}},
		{"server lost", cpuSample{server: 1 * s, serverOK: true}, cpuSample{serverOK: false, machine: 1 * s},
			cpuWindow{other: 1 * s}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diffCPU(tt.a, tt.b); got != tt.want {
				t.Errorf("diffCPU = %+v, want %+v", got, tt.want)
			}
		})
	}
}
