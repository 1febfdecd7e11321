package transfer

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Plan checks what to send before any connection is made: files, and folders, whose regular
// files are sent with their path from the folder's parent ("photos/2026/a.jpg"); each name
// must pass CheckPath, and no two may be the same. Inside a folder, symbolic links and
// special files are left out (skipped names them); a file or folder named on the command
// line is followed even when it is a link. It returns the names and sizes that Send will
// announce.
func Plan(paths []string) (files []Result, skipped []string, err error) {
	out, skipped, err := plan(paths)
	if err != nil {
		return nil, nil, err
	}
	files = make([]Result, len(out))
	for i, f := range out {
		files[i] = Result{Name: f.name, Size: f.size}
	}
	return files, skipped, nil
}

// maxFiles bounds the files of one Send.
const maxFiles = 100000

func plan(paths []string) ([]outgoing, []string, error) {
	if len(paths) == 0 {
		return nil, nil, errors.New("transfer: no files to send")
	}
	seen := make(map[string]string, len(paths))
	var files []outgoing
	var skipped []string
	add := func(p, name string, size int64) error {
		if err := CheckPath(name); err != nil {
			return err
		}
		if other, dup := seen[name]; dup {
			return fmt.Errorf("transfer: %s and %s have the same name %q", other, p, name)
		}
		if len(files) == maxFiles {
			return fmt.Errorf("transfer: more than %d files", maxFiles)
		}
		seen[name] = p
		files = append(files, outgoing{path: p, name: name, size: size})
		return nil
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("transfer: %w", err)
		}
		switch {
		case fi.Mode().IsRegular():
			if err := add(p, filepath.Base(p), fi.Size()); err != nil {
				return nil, nil, err
			}
		case fi.IsDir():
			root := filepath.Clean(p)
			base := filepath.Dir(root)
			if filepath.Base(root) == "." || filepath.Base(root) == ".." || filepath.Base(root) == string(filepath.Separator) {
				abs, err := filepath.Abs(root)
				if err != nil {
					return nil, nil, fmt.Errorf("transfer: %w", err)
				}
				root, base = abs, filepath.Dir(abs)
			}
			var addErr error // a name refused: already the error to return, as is
			err := filepath.WalkDir(root, func(fp string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				rel, rerr := filepath.Rel(base, fp)
				if rerr != nil {
					return rerr
				}
				name := filepath.ToSlash(rel)
				if !d.Type().IsRegular() {
					skipped = append(skipped, name)
					return nil
				}
				info, ierr := d.Info()
				if ierr != nil {
					return ierr
				}
				if addErr = add(fp, name, info.Size()); addErr != nil {
					return fs.SkipAll
				}
				return nil
			})
			if addErr != nil {
				return nil, nil, addErr
			}
			if err != nil {
				return nil, nil, fmt.Errorf("transfer: %w", err)
			}
		default:
			return nil, nil, fmt.Errorf("transfer: %s is not a regular file or a folder", p)
		}
	}
	if len(files) == 0 {
		return nil, skipped, errors.New("transfer: no files to send (only empty folders)")
	}
	return files, skipped, nil
}
