//! `/proc/self/mountinfo`: what is mounted where, and a mount's id. A leaf module, used by the
//! start-up checks (`run.rs`) and by the file system's last-close test (`fs/closing.rs`).

use std::path::Path;

/// The filesystem type mounted exactly at `path`, from /proc/self/mountinfo.
pub fn mounted_at(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    info.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        let mount_point = unescape(fields.get(4)?);
        if mount_point != want {
            return None;
        }
        let sep = fields.iter().position(|f| *f == "-")?;
        fields.get(sep + 1).map(|s| s.to_string())
    })
}

fn unescape(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The id of the mount at `mountpoint` (a canonical path: resolve it before mounting, since
/// resolving it afterwards asks the mount itself) in this process's mount namespace (the topmost
/// one, if several are stacked), from `/proc/self/mountinfo`.
pub fn mount_id(mountpoint: &std::path::Path) -> Option<u64> {
    let want = mountpoint.to_str()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let id = fields.next()?.parse().ok()?;
        let point = fields.nth(3)?;
        (unescape(point) == want).then_some(id)
    })
}

/// The device (`major:minor`) of mount `id`, or `None` once it is no longer in this process's
/// mount table (unmounted, or detached by a lazy unmount).
pub fn device_of(id: u64) -> Option<(u32, u32)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.next()?.parse::<u64>().ok()? != id {
            return None;
        }
        let (major, minor) = fields.nth(1)?.split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(mounted_at(Path::new("/")).is_some());
        let root = mount_id(Path::new("/")).expect("/ is mounted");
        assert!(device_of(root).is_some());
        assert_eq!(device_of(u64::MAX), None);
    }
}
