package migrate

// SetWindowSize sets how many UIDs a window spans (window.go) until the
// returned function restores it.
func SetWindowSize(n uint32) (restore func()) {
	old := windowSize
	windowSize = n
	return func() { windowSize = old }
}

// DistinctListings is distinctListings (run.go) for the tests.
var DistinctListings = distinctListings

// SetFlushEvery sets after how many messages a transfer flushes (run.go)
// until the returned function restores it.
func SetFlushEvery(n int) (restore func()) {
	old := flushEvery
	flushEvery = n
	return func() { flushEvery = old }
}

// SetLedgerRoom sets the room for ledger entries the passes share
// (ledgerroom.go) and calls seen with how many passes hold room each time
// one takes it, until the returned function restores both.
func SetLedgerRoom(entries int64, seen func(holders int)) (restore func()) {
	old, oldSeen := ledgerRoomEntries, onLedgerRoom
	ledgerRoomEntries, onLedgerRoom = entries, seen
	return func() { ledgerRoomEntries, onLedgerRoom = old, oldSeen }
}
