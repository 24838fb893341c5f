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
