//go:build !linux

package xtables

import (
	"errors"
	"syscall"
)

func supported() error { return errors.New("testing policies needs Linux network namespaces") }

func namespaced() *syscall.SysProcAttr { return nil }

func namespaceError(err error) error { return err }
