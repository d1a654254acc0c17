//! cosmount-bench: the benchmark harness behind `scripts/bench.sh` ([`harness`]), as a library so
//! its pure parts (argument and environment parsing, statistics, tool-output parsing, report
//! rendering) are unit-tested. The binaries `bench-harness`, `bench-server` and `raw-client` live
//! in `src/bin/`; [`manifest`] (the keys a write must leave in S3) is shared by the harness and
//! raw-client.

pub mod harness;
pub mod manifest;
