//! Statistics of the figures: the median of a workload's runs, rates and times formatted as the
//! report prints them, ratios to a baseline and which direction is better for each unit.
//!
//! Figures travel as the strings they were measured as (`"0.0123"`, `"212.2"`), as in the bash
//! harness: the median of an odd number of runs is one of those strings verbatim, the median of an
//! even number the mean of the middle two printed like C's `%.6g`.

/// The unit of a workload's figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    MbPerSec,
    OpsPerSec,
    FilesPerSec,
    Seconds,
}

impl Unit {
    /// The unit of a workload: the data workloads are rates, every listing workload a time (a
    /// latency row, `WORKLOAD@MSms`, has its workload's unit).
    pub fn of(workload: &str) -> Unit {
        match split_row(workload).0 {
            "seq_write" | "seq_read_cold" | "par_read_cold" => Unit::MbPerSec,
            "rand_read" | "rand_read8" => Unit::OpsPerSec,
            "small_write" | "small_write_s3" | "small_read" | "tar_x" | "tar_x_s3" => Unit::FilesPerSec,
            _ => Unit::Seconds,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::MbPerSec => "MB/s",
            Unit::OpsPerSec => "ops/s",
            Unit::FilesPerSec => "files/s",
            Unit::Seconds => "s",
        }
    }

    /// `"higher"` for rates, `"lower"` for times. The ratio is always figure / baseline; this says
    /// which side of 1 is better.
    pub fn better(self) -> &'static str {
        match self {
            Unit::Seconds => "lower",
            _ => "higher",
        }
    }
}

/// Parses a figure like `sort -g` and awk do: a leading number, else 0.
pub fn num(s: &str) -> f64 {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return v;
    }
    // The longest numeric prefix.
    (1..s.len())
        .rev()
        .filter(|&i| s.is_char_boundary(i))
        .find_map(|i| s[..i].parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The median of the runs (see the module doc); `""` for no runs.
pub fn median<S: AsRef<str>>(runs: &[S]) -> String {
    let mut v: Vec<&str> = runs.iter().map(|s| s.as_ref()).collect();
    if v.is_empty() {
        return String::new();
    }
    v.sort_by(|a, b| num(a).total_cmp(&num(b)));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2].to_string()
    } else {
        fmt_g6((num(v[n / 2 - 1]) + num(v[n / 2])) / 2.0)
    }
}

/// C's `printf("%.6g", x)`.
pub fn fmt_g6(x: f64) -> String {
    const P: i32 = 6;
    if x == 0.0 {
        return "0".to_string();
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    // The exponent after rounding to P significant digits.
    let e = format!("{:.*e}", (P - 1) as usize, x);
    let exp: i32 = e.rsplit('e').next().and_then(|s| s.parse().ok()).unwrap_or(0);
    if !(-4..P).contains(&exp) {
        let (mant, _) = e.split_once('e').unwrap_or((&e, "0"));
        let mant = trim_zeros(mant);
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (P - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// awk's `printf "%.Nf"` of a value.
pub fn fixed(x: f64, decimals: usize) -> String {
    format!("{x:.decimals$}")
}

/// A rate with one decimal: `amount / seconds` (MB/s when amount is in MB, files/s, ...).
pub fn rate(amount: f64, seconds: &str) -> String {
    fixed(amount / num(seconds), 1)
}

/// The ratio of a figure to its baseline, two decimals (e.g. `"0.57"`).
pub fn ratio(figure: &str, baseline: &str) -> String {
    fixed(num(figure) / num(baseline), 2)
}

/// A row's workload and its latency suffix: `ls_l_cold@20ms` gives (`ls_l_cold`, `@20ms`), a
/// loopback row (`ls_l_cold`, ``).
pub fn split_row(workload: &str) -> (&str, &str) {
    match workload.find('@') {
        Some(i) => workload.split_at(i),
        None => (workload, ""),
    }
}

/// The system and workload whose figure `system`'s figure for `workload` is divided by: the raw
/// client's same workload, except warm listings (the local directory's) and the cold `ls -l` of
/// cosmount --listing-attributes and of the local directory, and every `ls -l` on a next mount
/// (the raw LIST without HEADs: a mount that kept what it knew needs no more). A
/// latency row's baseline is the same row of the same run under the same latency (`@20ms`).
pub fn baseline_of(system: &str, workload: &str) -> (&'static str, String) {
    let (wl, lat) = split_row(workload);
    match (system, wl) {
        ("cosmount-la" | "local", "ls_l_cold") | (_, "ls_l_next") => ("raw", format!("ls_f_cold{lat}")),
        (_, "ls_f_warm" | "ls_l_warm") => ("local", workload.to_string()),
        _ => ("raw", workload.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_runs_is_a_run_verbatim() {
        assert_eq!(median(&["0.0300", "0.0100", "0.0200"]), "0.0200");
        assert_eq!(median(&["212.2"]), "212.2");
        assert_eq!(median(&["9.5", "10.0", "100.0"]), "10.0", "numeric, not lexical order");
        assert_eq!(median::<&str>(&[]), "");
    }

    #[test]
    fn median_of_even_runs_is_the_mean_as_g6() {
        assert_eq!(median(&["1.0", "2.0"]), "1.5");
        assert_eq!(median(&["0.0123", "0.0124", "9", "0.001"]), "0.01235");
        assert_eq!(median(&["1234.5", "1234.6"]), "1234.55");
        assert_eq!(median(&["123456.7", "123456.9"]), "123457");
    }

    #[test]
    fn g6_matches_printf() {
        assert_eq!(fmt_g6(0.0), "0");
        assert_eq!(fmt_g6(1.5), "1.5");
        assert_eq!(fmt_g6(100.0), "100");
        assert_eq!(fmt_g6(0.0001), "0.0001");
        assert_eq!(fmt_g6(0.00001234), "1.234e-05");
        assert_eq!(fmt_g6(1234567.0), "1.23457e+06");
        assert_eq!(fmt_g6(999999.5), "1e+06");
        assert_eq!(fmt_g6(-2.25), "-2.25");
    }

    #[test]
    fn rates_and_ratios() {
        assert_eq!(rate(33554432.0 / 1e6, "0.6806"), "49.3");
        assert_eq!(rate(100.0, "0.0564"), "1773.0");
        assert_eq!(ratio("56.1", "49.3"), "1.14");
        assert_eq!(ratio("0.0788", "0.0045"), "17.51");
        assert_eq!(fixed(64.6, 0), "65");
    }

    #[test]
    fn units_and_direction() {
        assert_eq!(Unit::of("seq_write").as_str(), "MB/s");
        assert_eq!(Unit::of("rand_read8").as_str(), "ops/s");
        assert_eq!(Unit::of("small_read").as_str(), "files/s");
        for w in ["small_write_s3", "tar_x", "tar_x_s3", "small_write_s3@20ms"] {
            assert_eq!(Unit::of(w), Unit::FilesPerSec, "{w}");
            assert_eq!(baseline_of("cosmount-wc", w), ("raw", w.to_string()));
        }
        assert_eq!(Unit::of("ls_f_big_first").as_str(), "s");
        assert_eq!(Unit::of("rsync2").better(), "lower");
        assert_eq!(Unit::of("par_read_cold").better(), "higher");
    }

    #[test]
    fn baselines() {
        assert_eq!(baseline_of("cosmount", "ls_l_cold"), ("raw", "ls_l_cold".to_string()));
        assert_eq!(
            baseline_of("cosmount-la", "ls_l_cold"),
            ("raw", "ls_f_cold".to_string())
        );
        assert_eq!(baseline_of("local", "ls_l_cold"), ("raw", "ls_f_cold".to_string()));
        assert_eq!(baseline_of("cosmount", "ls_l_next"), ("raw", "ls_f_cold".to_string()));
        assert_eq!(
            baseline_of("cosmount", "ls_l_next@20ms"),
            ("raw", "ls_f_cold@20ms".to_string())
        );
        assert_eq!(baseline_of("s3fs", "ls_f_warm"), ("local", "ls_f_warm".to_string()));
        assert_eq!(baseline_of("local", "ls_l_warm"), ("local", "ls_l_warm".to_string()));
        assert_eq!(baseline_of("rclone", "seq_write"), ("raw", "seq_write".to_string()));
    }

    #[test]
    fn latency_rows_keep_their_units_and_baselines_under_the_same_latency() {
        assert_eq!(split_row("ls_l_cold@20ms"), ("ls_l_cold", "@20ms"));
        assert_eq!(split_row("find_cold"), ("find_cold", ""));
        assert_eq!(Unit::of("small_read@20ms"), Unit::FilesPerSec);
        assert_eq!(Unit::of("ls_l_cold@20ms"), Unit::Seconds);
        assert_eq!(
            baseline_of("cosmount", "ls_l_cold@20ms"),
            ("raw", "ls_l_cold@20ms".to_string())
        );
        assert_eq!(
            baseline_of("cosmount-la", "ls_l_cold@20ms"),
            ("raw", "ls_f_cold@20ms".to_string())
        );
        assert_eq!(
            baseline_of("s3fs", "ls_l_warm@20ms"),
            ("local", "ls_l_warm@20ms".to_string())
        );
        assert_eq!(
            baseline_of("rclone", "small_write@5ms"),
            ("raw", "small_write@5ms".to_string())
        );
    }

    #[test]
    fn num_parses_like_awk() {
        assert_eq!(num("0.01"), 0.01);
        assert_eq!(num(" 3 "), 3.0);
        assert_eq!(num("12abc"), 12.0);
        assert_eq!(num(""), 0.0);
    }
}
