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
