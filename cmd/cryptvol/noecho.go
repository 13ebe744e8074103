package main

import "golang.org/x/sys/unix"

// noEcho turns the terminal's echo off, leaving line editing on: ui.askTerminal
// does it before the prompt shows and reads the line itself.
func noEcho(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Lflag &^= unix.ECHO
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
