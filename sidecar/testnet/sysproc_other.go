//go:build !linux

package testnet

import "syscall"

// childSysProcAttr: no parent-death signal outside Linux; Close stops children explicitly.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
