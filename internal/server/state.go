package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/switchboard-rtc/switchboard/internal/hub"
)

// The state file (--state-file): on a graceful restart the node writes the presences it muted
// and its resume secrets; the next start reads it back (and removes it), so clients that come
// back within --resume-grace resume as if the node had never gone, and the others leave
// (timeout). It holds secrets: 0600.

// state is the state file's content.
type state struct {
	Version   int                 `json:"version"`
	Secrets   [][]byte            `json:"secrets"` // the resume secrets, the signing one first
	Presences []hub.SavedPresence `json:"presences"`
}

const stateVersion = 1

// readState reads and removes the state file at path; a missing file is no state.
func readState(path string) (*state, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil || st.Version != stateVersion {
		return nil, fmt.Errorf("state file %s: not a version %d state (%v)", path, stateVersion, err)
	}
	// Used once: a later crash must not bring these presences back again.
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	return &st, nil
}

// writeState writes st to path (0600), through a temporary file renamed over it.
func writeState(path string, st *state) error {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".switchboard-state-*")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}
