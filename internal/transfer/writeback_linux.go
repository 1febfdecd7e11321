package transfer

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing bytes [off, off+n) of f to the disk now,
// without waiting for it (sync_file_range with SYNC_FILE_RANGE_WRITE), so that the fsync at
// the file's end has only the tail left to write. A hint: its errors are ignored, the fsync
// still decides.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE) //nolint:gosec // a file descriptor fits an int
}
