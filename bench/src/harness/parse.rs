//! Reading what the tools print: the flat JSON objects of raw-client and helpers.py, `rsync
//! --stats`, `/proc` files (`VmHWM`, mountinfo, loadavg, meminfo), `ls -l` listings, and the short
//! excerpts of error output the report quotes.
//!
//! Everything here is a pure function of text, so it is tested without the tools.

/// A field of a flat JSON object, as the text it was printed as (`"seconds":0.01` gives `0.01`,
/// `"op":"list"` gives `list`); `""` when absent. Like the bash harness's `jget`, the last
/// occurrence wins and the value ends at the first `,`, `"` or `}`: numbers keep their printed
/// form, which is what the report shows.
pub fn jget(json: &str, field: &str) -> String {
    let pat = format!("\"{field}\":");
    let Some(at) = json.rfind(&pat) else {
        return String::new();
    };
    let rest = &json[at + pat.len()..];
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest.find([',', '"', '}', '\n']).unwrap_or(rest.len());
    rest[..end].to_string()
}

/// The count on `rsync --stats`'s "Number of regular files transferred:" line, without the
/// thousands separators; `None` when the line is missing.
pub fn rsync_transferred(stats: &str) -> Option<String> {
    stats.lines().find_map(|l| {
        let rest = l.strip_prefix("Number of regular files transferred:")?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        Some(digits)
    })
}

/// Peak resident set size in MiB (whole MiB, rounded down) from a `/proc/PID/status` text.
pub fn vmhwm_mib(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let kib: u64 = l.strip_prefix("VmHWM:")?.split_whitespace().next()?.parse().ok()?;
        Some(kib / 1024)
    })
}

/// Whether a `/proc/self/mountinfo` text has a mount at `path` (field 5, the mount point).
pub fn is_mounted_in(mountinfo: &str, path: &str) -> bool {
    mountinfo.lines().any(|l| l.split_whitespace().nth(4) == Some(path))
}

/// The parent pid in a `/proc/PID/stat` text (the field after the state, which follows the
/// command name in parentheses; the name itself may hold spaces and parentheses).
pub fn ppid_of_stat(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The 1, 5 and 15 minute load averages of a `/proc/loadavg` text, space-separated.
pub fn loadavg3(loadavg: &str) -> String {
    loadavg
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end()
        .to_string()
}

/// MemTotal in MiB (rounded down) from a `/proc/meminfo` text.
pub fn mem_total_mib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let kib: u64 = l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok()?;
        Some(kib / 1024)
    })
}

/// How many lines of an `ls -l` output list an entry of `size` bytes (the 5th field).
pub fn ls_l_entries_of_size(listing: &str, size: u64) -> u64 {
    let want = size.to_string();
    listing
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
        .count() as u64
}

/// The first `n` lines, each followed by `;` (`head -n N | tr '\n' ';'`).
pub fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).map(|l| format!("{l};")).collect()
}

/// The first `n` bytes, newlines as spaces (`head -c N | tr '\n' ' '`).
pub fn head_bytes(text: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&text[..text.len().min(n)]).replace('\n', " ")
}

/// The first `n` bytes as they are (`head -c N`).
pub fn head_raw(text: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&text[..text.len().min(n)]).into_owned()
}

/// The last `n` bytes (`tail -c N`).
pub fn tail_raw(text: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&text[text.len().saturating_sub(n)..]).into_owned()
}

/// A peer's version line: the first line, without s3fs's " (commit ...)" tail.
pub fn peer_version(output: &str) -> String {
    let first = output.lines().next().unwrap_or("");
    match first.find(" (commit") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jget_reads_flat_json_as_printed() {
        let j = r#"{"op":"list","seconds":0.0045,"bytes":0,"mb_s":0.0,"keys":300,"first_page_seconds":0.01}"#;
        assert_eq!(jget(j, "op"), "list");
        assert_eq!(jget(j, "seconds"), "0.0045");
        assert_eq!(jget(j, "keys"), "300");
        assert_eq!(jget(j, "first_page_seconds"), "0.01");
        assert_eq!(jget(j, "missing"), "");
        // helpers.py prints Python floats: kept verbatim.
        assert_eq!(
            jget(r#"{"op":"first","seconds":1e-05,"entries":3}"#, "seconds"),
            "1e-05"
        );
        // wait-object's polls and a string value.
        assert_eq!(jget(r#"{"op":"wait-object","seconds":0.0,"polls":1}"#, "polls"), "1");
    }

    #[test]
    fn rsync_stats() {
        let out = "\nNumber of files: 1,051 (reg: 1,000, dir: 51)\nNumber of created files: 0\n\
                   Number of deleted files: 0\nNumber of regular files transferred: 1,000\n\
                   Total file size: 32,768,000 bytes\n";
        assert_eq!(rsync_transferred(out).as_deref(), Some("1000"));
        assert_eq!(
            rsync_transferred("Number of regular files transferred: 0\n").as_deref(),
            Some("0")
        );
        assert_eq!(rsync_transferred("sent 123 bytes\n"), None);
    }

    #[test]
    fn proc_files() {
        let status = "Name:\tcosmount\nVmPeak:\t  900000 kB\nVmHWM:\t   64600 kB\nVmRSS:\t   30000 kB\n";
        assert_eq!(vmhwm_mib(status), Some(63));
        assert_eq!(vmhwm_mib("Name:\tx\n"), None);
        let mi = "36 25 0:32 / /work/wt/bench/work/run-1/mnt-cosmount rw,nosuid,nodev - fuse.cosmount cosmount rw\n\
                  22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        assert!(is_mounted_in(mi, "/work/wt/bench/work/run-1/mnt-cosmount"));
        assert!(!is_mounted_in(mi, "/work/wt/bench/work/run-1/mnt-s3fs"));
        assert!(is_mounted_in(mi, "/"));
        assert_eq!(ppid_of_stat("7222 (bench-harness) S 7100 7222 1 0 -1"), Some(7100));
        assert_eq!(ppid_of_stat("42 (a) b (c)) R 1 42 42 0"), Some(1));
        assert_eq!(ppid_of_stat("garbage"), None);
        assert_eq!(loadavg3("2.38 2.09 2.02 3/512 12345\n"), "2.38 2.09 2.02");
        assert_eq!(
            mem_total_mib("MemTotal:       24683752 kB\nMemFree: 1 kB\n"),
            Some(24105)
        );
    }

    #[test]
    fn ls_l_sizes() {
        let out = "total 30\n-rw-r--r-- 1 root root 100 Dec  4 07:10 f0000\n\
                   -rw-r--r-- 1 root root 100 Dec  4 07:10 f0001\n-rw-r--r-- 1 root root 99 Dec  4 07:10 f0002\n";
        assert_eq!(ls_l_entries_of_size(out, 100), 2);
        assert_eq!(ls_l_entries_of_size("", 100), 0);
    }

    #[test]
    fn excerpts() {
        assert_eq!(first_lines("a\nb\nc\nd\n", 3), "a;b;c;");
        assert_eq!(head_bytes(b"line one\nline two", 12), "line one lin");
        assert_eq!(tail_raw(b"0123456789", 3), "789");
        assert_eq!(head_raw(b"ab", 200), "ab");
        assert_eq!(
            peer_version("V1.90 (commit:unknown) with GnuTLS(gcrypt)\nCopyright\n"),
            "V1.90"
        );
        assert_eq!(
            peer_version("rclone v1.60.1-DEV\n- os/version: debian\n"),
            "rclone v1.60.1-DEV"
        );
    }
}
