//! bench-harness: the benchmark run of `scripts/bench.sh` (which builds this package and execs it
//! with its own arguments from the repository root). All logic is in `cosmount_bench::harness`.

fn main() {
    std::process::exit(cosmount_bench::harness::main());
}
