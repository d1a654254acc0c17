//! cosmount-bench: the benchmark harness behind `scripts/bench.sh` ([`harness`]), as a library so
//! its pure parts (argument and environment parsing, statistics, tool-output parsing, report
//! rendering) are unit-tested. The binaries `bench-harness`, `bench-server` and `raw-client` live
//! in `src/bin/`.

pub mod harness;
