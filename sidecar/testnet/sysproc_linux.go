package testnet

import "syscall"

// childSysProcAttr makes children die with the harness even if it is SIGKILLed.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
