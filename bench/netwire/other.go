//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
	"net"
)

var errLinuxOnly = errors.New("netwire needs Linux (AF_PACKET, TCP_CONGESTION)")

func runWire(context.Context, string, string, Impairment, int, uint64, io.Writer) error {
	return errLinuxOnly
}

func congestion(*net.TCPConn, string) (string, error) { return "", errLinuxOnly }
