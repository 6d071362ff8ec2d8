package shellcheck

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestScripts checks every shell script of the repository that runs as
// it is: scripts/ (make's), lab/ (what the lab runs in its hosts). The
// scripts the hosts of a fleet run are made of fragments, checked once
// made (runner/remote's TestShellcheck).
func TestScripts(t *testing.T) {
	root := "../.."
	var scripts []Script
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || path == filepath.Join(root, "runner/remote/scripts")) {
			return filepath.SkipDir
		}
		shell := map[string]string{".sh": "sh", ".bash": "bash"}[filepath.Ext(path)]
		if d.IsDir() || shell == "" {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(data)
		if strings.HasPrefix(text, "#!/usr/bin/env bash") || strings.HasPrefix(text, "#!/bin/bash") {
			shell = "bash"
		}
		scripts = append(scripts, Script{Name: strings.TrimPrefix(path, root+"/"), Shell: shell, Text: text})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(scripts) < 4 {
		t.Errorf("%d scripts checked: scripts/ and lab/ hold more", len(scripts))
	}
	for _, s := range scripts {
		t.Run(s.Name, func(t *testing.T) { Parse(t, s.Shell, s.Text) })
	}
	Check(t, scripts...)
}
