package certs

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

// errStopped is what storage answers a write after the manager stopped.
var errStopped = errors.New("certs: ACME manager stopped")

// stoppableStorage is certmagic's file storage that stops writing when the manager stops:
// certmagic's own goroutines (a job finishing after its context was canceled) may still try
// to store a file or take a lock afterwards; they are refused, so that nothing is created
// in the directory once Stop has returned. Reads, deletes and unlocks still go through
// (an unlock removes a lock file; nothing is created by them).
type stoppableStorage struct {
	*certmagic.FileStorage

	mu      sync.RWMutex // held for reading by each write in flight, for writing by stop
	stopped bool
}

// stop waits for the writes in flight and refuses the later ones.
func (s *stoppableStorage) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

func (s *stoppableStorage) writing() bool {
	s.mu.RLock()
	if s.stopped {
		s.mu.RUnlock()
		return false
	}
	return true
}

// Store implements certmagic.Storage.
func (s *stoppableStorage) Store(ctx context.Context, key string, value []byte) error {
	if !s.writing() {
		return errStopped
	}
	defer s.mu.RUnlock()
	return s.FileStorage.Store(ctx, key, value)
}

// Lock implements certmagic.Locker. It waits for the lock, until ctx ends.
func (s *stoppableStorage) Lock(ctx context.Context, name string) error {
	if !s.writing() {
		return errStopped
	}
	defer s.mu.RUnlock()
	return s.FileStorage.Lock(ctx, name)
}

// TryLock implements certmagic.TryLocker.
func (s *stoppableStorage) TryLock(ctx context.Context, name string) (bool, error) {
	if !s.writing() {
		return false, errStopped
	}
	defer s.mu.RUnlock()
	return s.FileStorage.TryLock(ctx, name)
}

// List implements certmagic.Storage. The folders of ACME accounts (acme/<CA>/users) are not
// listed: certmagic lists them only to guess an account email from the newest account when
// none is configured (and to find an account by a configured key, which this package never
// sets). The guess goes wrong while another obtain is saving the first account (its
// registration written, its key not yet): certmagic takes the folder's name, "default", for
// an email, keeps it for the rest of the process, and every account registered afterwards
// asks for the contact mailto:default, which CAs refuse. The account's contact is the
// configured email or none; accounts are still loaded by their exact keys.
func (s *stoppableStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if isAccountsPrefix(prefix) {
		return nil, fs.ErrNotExist
	}
	return s.FileStorage.List(ctx, prefix, recursive)
}

// isAccountsPrefix reports whether prefix is certmagic's folder of a CA's accounts,
// acme/<CA>/users.
func isAccountsPrefix(prefix string) bool {
	dir, base := path.Split(strings.Trim(prefix, "/"))
	return base == "users" && path.Dir(strings.TrimSuffix(dir, "/")) == "acme"
}

// RenewLockLease is not offered by the file storage; certmagic skips it.
var _ certmagic.Storage = (*stoppableStorage)(nil)

// checkWritable stores, reads back and deletes a file in the storage, so that a directory
// that cannot be written is reported at start, not when the first certificate is due.
func checkWritable(ctx context.Context, s certmagic.Storage) error {
	key := "switchboard_write_check"
	want := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if err := s.Store(ctx, key, want); err != nil {
		return err
	}
	got, err := s.Load(ctx, key)
	if err != nil {
		return err
	}
	if string(got) != string(want) {
		return errors.New("a file read back differs from what was written")
	}
	return s.Delete(ctx, key)
}
