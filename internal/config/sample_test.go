package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// TestSampleDocumentsEveryOption: docs/config-sample.yaml has a key for every serve flag, and
// loads.
func TestSampleDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile("../../docs/config-sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var path string
	cfg := Default()
	FlagSet(&cfg, &path).VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if !strings.Contains(string(b), "\n"+f.Name+":") && !strings.Contains(string(b), "\n# "+f.Name+":") {
			t.Errorf("docs/config-sample.yaml does not document %s", f.Name)
		}
	})
	if err := loadYAML("../../docs/config-sample.yaml", &cfg); err != nil {
		t.Fatalf("the sample does not load: %v", err)
	}
}
