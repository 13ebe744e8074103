package fsys

import (
	"os/exec"
	"path/filepath"
)

// sbinDirs hold the mkfs programs. An ordinary user's PATH on Debian leaves
// them out, yet the programs work without root on a file they may write.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// LookPath finds a program in PATH, or else in /usr/sbin or /sbin.
func LookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, d := range sbinDirs {
		if q, err := exec.LookPath(filepath.Join(d, name)); err == nil {
			return q, nil
		}
	}
	return "", err
}
