package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Ready reports whether a metrics file can be written at path: its
// directory exists and takes a new file, and a file already there is one
// whose values can be carried over. Commands ask before they contact any
// host, so that a mistyped path costs nothing.
func Ready(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	tmp.Close()
	os.Remove(tmp.Name())
	_, err = parse(path)
	return err
}

// previous is what the file a run replaces says that the run carries over.
type previous struct {
	lastSuccess   float64
	driftRepaired float64
}

// readPrevious reads the values a run of command on the inventory named
// inv carries over from the file at path; zeros when there is none, or
// when it holds no such series (another command's or inventory's file).
func readPrevious(path, inv, command string) (previous, error) {
	fams, err := parse(path)
	if err != nil {
		return previous{}, err
	}
	find := func(name string) float64 {
		for _, m := range fams[name].GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["inventory"] == inv && l["command"] == command {
				// Whichever type the file gave it; the others are 0.
				return m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			}
		}
		return 0
	}
	return previous{lastSuccess: find(nameLastSuccess), driftRepaired: find(nameDriftRepaired)}, nil
}

// parse reads the metrics file at path; none when there is no file.
func parse(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(f)
	if err != nil {
		return nil, fmt.Errorf("%s is not a metrics file fwpush can read (remove it, or choose another file): %w", path, err)
	}
	return fams, nil
}

// tempPattern names the temporary file beside path: hidden, and not
// ending in .prom, so that the textfile collector never reads it half
// written.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".*.tmp" }

// writeFile replaces the file at path with fams, atomically: a temporary
// file in the same directory, synced to disk, renamed over path, and the
// directory synced, so that a reader sees the old file or the new one,
// even after a crash. The file is mode 0644 whatever the umask: the
// collector runs as another user.
func writeFile(path string, fams []*dto.MetricFamily) (err error) {
	var buf bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("write %s: %w", path, err)
		}
	}()
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
