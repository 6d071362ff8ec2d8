package lab

import (
	"fmt"
	"path/filepath"
	"strings"
)

// HostPath returns where the machine keeps a file that host sees at path,
// inside one of the directories of its own (/root, /etc/iptables,
// /var/lib/fwpush): tools that set a host's state from outside (make bench
// resetting a fleet) write there directly. Paths elsewhere are an error;
// /run and /tmp are tmpfs that only the host's mount namespace sees.
func (l *Lab) HostPath(host, path string) (string, error) {
	n, err := l.Host(host)
	if err != nil {
		return "", err
	}
	clean := filepath.Clean(path)
	for _, m := range hostMounts {
		if clean == m.target {
			return filepath.Join(l.hostDir(n), m.dir), nil
		}
		if rest, ok := strings.CutPrefix(clean, m.target+"/"); ok {
			return filepath.Join(l.hostDir(n), m.dir, rest), nil
		}
	}
	return "", fmt.Errorf("lab %s: host %s: %s is not in a directory of the host's own (%s)", l.Name, host, path, ownDirs())
}

func ownDirs() string {
	var dirs []string
	for _, m := range hostMounts {
		dirs = append(dirs, m.target)
	}
	return strings.Join(dirs, ", ")
}
