//go:build !linux

package migrate

import bolt "go.etcd.io/bbolt"

// dropMapped is Linux's only (statemap_linux.go).
func dropMapped(*bolt.DB) {}

// dropMappedIn is Linux's only (statemap_linux.go).
func dropMappedIn(*bolt.DB, *bolt.Tx) {}
