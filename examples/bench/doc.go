// Package bench holds BenchmarkPeers, which measures mailferry against the
// fastest peer tools (interimap, mbsync, doveadm backup, getmail6) on the
// same generated data, on this machine, and prints a table of medians,
// throughput ratios, peak RSS and the targets mailferry is held to. It is a
// benchmark, so `go test ./...` compiles it but never runs it; run it with
// scripts/bench, or from the repository root:
//
//	go test -run '^$' -bench '^BenchmarkPeers$' -benchtime 1x -timeout 60m ./examples/bench
//
// Why it is built the way it is (README.md has the details):
//
//   - Two deterministic sets (SMALL: 20,000 messages of about 1 KB in 12
//     folders; MIXED: 5,000 messages of 2 KB to 3 MB, about 417 MB) are
//     generated from a fixed seed, so every run and every machine moves the
//     same bytes. Each is written once into a source Dovecot's Maildir and
//     warmed, so that no tool pays for Dovecot's indexing.
//   - Every job runs each tool on the same source over MAILFERRY_BENCH_ROUNDS
//     rounds, the order of the tools rotating, each run into a fresh
//     destination with fresh state, and a run counts only when the
//     destination then holds what the source holds.
//   - Tools are started through a small helper (this test binary re-executed,
//     taken over by an init function only when its environment variable is
//     set): a child's ru_maxrss starts at its parent's high-water RSS, so a
//     tool started straight from the benchmark would report at least the
//     benchmark's own peak.
//   - Nothing is deleted until the end, caches are dropped before seeding and
//     each timed run starts after sync: on ext4, freshly deleted inodes and
//     the previous run's writeback made the next runs slower, unevenly.
//   - The mailferry binary is built once per run from this module; with
//     MAILFERRY_BENCH_PROFILE a second build adds testdata/profiled.go to
//     package main (go build -overlay), so that each mailferry job can be
//     profiled inside its own process.
//
// Environment:
//
//	MAILFERRY_BENCH_SCALE    scale the message counts and bytes (default 1; 0.1 for a quick run),
//	                         up to 50, or a named size of SMALL: 20k, 200k, 1M (scale 1, 10,
//	                         50: 1,000,000 messages of ~1 KB, INBOX 297,700); above 1 the
//	                         MIXED set is left out
//	MAILFERRY_BENCH_ROUNDS   rounds per job (default 3; 0 runs only the profile runs)
//	MAILFERRY_BENCH_JOBS     comma list of imap,maildir,mbox,pop3,rtt (the default; delta and
//	                         watch, the cutover, only when named); rtt runs
//	                         IMAP->IMAP (both sets) and POP3->Maildir (SMALL's INBOX)
//	                         through a delay proxy adding 20 ms and 80 ms round trips,
//	                         each compared with its own loopback run and with a run
//	                         through the same proxy adding nothing; mbox is mailferry
//	                         alone: `archive --format mbox`
//	MAILFERRY_BENCH_TOOLS    comma list of the tools to run (default all: mailferry,
//	                         interimap,mbsync,dsync,getmail6)
//	MAILFERRY_BENCH_ARGS     extra flags for mailferry's IMAP->IMAP runs ("--jobs 2")
//	MAILFERRY_BENCH_HOLD_MEMORY  1: pause the kernel's free page reporting to the VM's host
//	                         for the run and touch the free memory once (root; see
//	                         memory_test.go): on a VM whose host takes free memory back,
//	                         the first use of a page it took costs a host fault, which a
//	                         1M copy's gigabytes of new files pay and a 20k copy does not
//	MAILFERRY_BENCH_WIRELOG  a file: each delay-proxy run appends a line per chunk it forwards
//	                         (time in µs, run, RTT, server, connection and direction, size,
//	                         first bytes; logins left out), to read a slow link's round trips
//	MAILFERRY_BENCH_PROFILE  a directory: after the rounds, run each mailferry job of the
//	                         run's once more under pprof and write JOB-SET.cpu.pprof there,
//	                         with .heap.pprof, .allocs.pprof and an execution trace,
//	                         JOB-SET.trace (go tool trace: where a run waits, not computes);
//	                         the delta job's is its pass with changes (delta-small.*)
package bench
