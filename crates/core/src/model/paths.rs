//! The rules for the paths a task names, as far as the text of a path can tell. The server applies
//! them in `Action::validate` (REST and gRPC alike), so a bad path is refused with a 422 naming
//! its field and never reaches a node; the agent applies them again before it touches anything,
//! because an agent obeys whatever reaches its stream. Where a path really leads (symbolic links,
//! junctions, what is a directory) only the agent can find out, on its own file system.
//!
//! A directory (a skeleton copy's `source` or `destination`) is absolute, in one of three forms:
//! a drive path `F:\Data`, a UNC path `\\HOST\F$\Data` (`/` works as a separator too), or a
//! Unix path `/srv/data`. It never has a `..` component, since what it climbs out of is not what
//! the caller was allowed into. It never names a device: the Windows device namespaces
//! (`\\.\`, `\\?\`, `\??\`), a reserved DOS device name as any component (`NUL`, `COM1.txt`),
//! an alternate data stream (`Data:stream`), or the Unix trees of devices and kernel files
//! (`/dev`, `/proc`, `/sys`).
//!
//! A log (`log_path`) is a plain file name or nothing: the agent writes it in its own log
//! directory, so the caller names the file, never where it goes.

/// Longest log file name, in bytes: what Linux and NTFS allow for one name.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Top-level Unix folders that hold devices and kernel files, never a tree to copy.
const UNIX_DEVICE_TREES: [&str; 3] = ["dev", "proc", "sys"];

/// An absolute path split into the parts the rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathForm<'a> {
    /// `F:\rest`; the letter as written.
    Drive { letter: char, rest: &'a str },
    /// `\\host\share\rest`.
    Unc {
        host: &'a str,
        share: &'a str,
        rest: &'a str,
    },
    /// `/rest`.
    Unix { rest: &'a str },
}

impl<'a> PathForm<'a> {
    /// The path's form, or the rule it breaks when it is not absolute or names a device
    /// namespace. Only the beginning is looked at; [`check_dir_path`] checks the components.
    pub fn of(path: &'a str) -> Result<PathForm<'a>, String> {
        let sep = |c: char| c == '\\' || c == '/';
        let mut chars = path.chars();
        let first = chars.next();
        let second = chars.next();
        match (first, second) {
            (Some(a), Some(b)) if sep(a) && sep(b) => {
                let unc = &path[2..];
                let (host, after) = unc.split_once(sep).unwrap_or((unc, ""));
                if host == "." || host == "?" {
                    return Err(
                        "names the Windows device namespace (`\\\\.\\`, `\\\\?\\`): devices and \
                         raw volumes are never a folder to copy"
                            .into(),
                    );
                }
                let (share, rest) = after.split_once(sep).unwrap_or((after, ""));
                if host.is_empty() || share.is_empty() {
                    return Err("a UNC path needs a host and a share: `\\\\HOST\\F$\\...`".into());
                }
                Ok(PathForm::Unc { host, share, rest })
            }
            (Some('\\'), Some('?')) if path.starts_with("\\??\\") => Err(
                "names the Windows object namespace (`\\??\\`): devices and raw volumes are \
                 never a folder to copy"
                    .into(),
            ),
            (Some(letter), Some(':')) if letter.is_ascii_alphabetic() => {
                let rest = &path[2..];
                match rest.chars().next() {
                    Some(c) if sep(c) => Ok(PathForm::Drive { letter, rest }),
                    // `F:` and `F:Data` are relative to the drive's current folder, which is
                    // whatever the agent's process last left there.
                    _ => Err(format!(
                        "`{letter}:` without `\\` is relative to that drive's current folder: \
                         write `{letter}:\\...`"
                    )),
                }
            }
            (Some('/'), _) => Ok(PathForm::Unix { rest: &path[1..] }),
            _ => Err(
                "must be absolute: a drive path (`F:\\...`), a UNC path (`\\\\HOST\\F$\\...`) \
                 or a Unix path (`/...`)"
                    .into(),
            ),
        }
    }

    /// Whether Windows rules (reserved device names, streams) apply to its components.
    pub fn is_windows(&self) -> bool {
        !matches!(self, PathForm::Unix { .. })
    }
}

/// The components of `rest`, split on either separator (a `\` inside a Unix name is rare, and
/// treating it as a separator only refuses more), empty ones and `.` left out.
fn components(rest: &str) -> impl Iterator<Item = &str> {
    rest.split(['\\', '/'])
        .filter(|c| !c.is_empty() && *c != ".")
}

/// Whether `name` is a reserved DOS device name, which Windows opens as the device in any folder
/// and with any extension (`NUL`, `nul.txt`, `COM1 .log`).
pub fn is_windows_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name).trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if matches!(
        upper.as_str(),
        "CON" | "PRN" | "AUX" | "NUL" | "CONIN$" | "CONOUT$"
    ) {
        return true;
    }
    // COM0-9 and LPT0-9, and the superscript digits Windows also maps (`COM¹`).
    let (prefix, digit) = match (stem.get(..3), stem.get(3..)) {
        (Some(prefix), Some(digit)) => (prefix.to_ascii_uppercase(), digit),
        _ => return false,
    };
    (prefix == "COM" || prefix == "LPT")
        && matches!(
            digit,
            "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8" | "9" | "¹" | "²" | "³"
        )
}

/// Checks a directory path a task names (a skeleton copy's `source` or `destination`); the
/// error is the rule it breaks. See the module documentation for the rules.
pub fn check_dir_path(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if path.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let form = PathForm::of(path)?;
    let rest = match form {
        PathForm::Drive { rest, .. } | PathForm::Unix { rest } => rest,
        PathForm::Unc {
            host, share, rest, ..
        } => {
            if host == ".." || share == ".." {
                return Err("must not contain `..`".into());
            }
            rest
        }
    };
    let mut parts = components(rest).peekable();
    if let PathForm::Unix { .. } = form
        && let Some(top) = parts.peek()
        && UNIX_DEVICE_TREES.contains(top)
    {
        return Err(format!(
            "`/{top}` holds devices and kernel files, never a folder to copy"
        ));
    }
    for part in parts {
        if part == ".." {
            return Err(
                "must not contain `..`: name the folder itself, not a way out of another".into(),
            );
        }
        if form.is_windows() {
            if part.contains(':') {
                return Err(format!(
                    "`{part}`: a `:` after the drive names an alternate data stream, not a folder"
                ));
            }
            if is_windows_device_name(part) {
                return Err(format!("`{part}` is a Windows device name, not a folder"));
            }
        }
    }
    Ok(())
}

/// Checks a log name (`log_path`): empty (the agent names the log after the task) or a plain file
/// name, which the agent puts in its own log directory.
pub fn check_log_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Ok(());
    }
    if name.contains(['/', '\\']) {
        return Err(
            "must be a plain file name, without a folder: the agent writes its logs in its own \
             log directory"
                .into(),
        );
    }
    if name.contains(':') {
        return Err(
            "must be a plain file name, without a drive or a stream (`:`): the agent writes its \
             logs in its own log directory"
                .into(),
        );
    }
    if name.trim().is_empty() || name == "." || name == ".." {
        return Err("must be a file name".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(format!(
            "must be at most {MAX_FILE_NAME_BYTES} bytes (one file name)"
        ));
    }
    if is_windows_device_name(name) {
        return Err(format!("`{name}` is a Windows device name, not a file"));
    }
    // Windows drops them, so `a.log.` and `a.log` would be the same file there.
    if name.ends_with(['.', ' ']) {
        return Err("must not end with a dot or a space".into());
    }
    Ok(())
}

/// A drive or UNC path reduced to what containment compares: its root (`f:` or
/// `\\host\share`) and its folders, case-folded as Windows compares them. Parsing is lexical:
/// the agent compares a path with its allowed roots this way before anything is opened, since
/// merely opening `\\HOST\...` makes Windows authenticate to that host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowsPath {
    root: String,
    parts: Vec<String>,
}

impl WindowsPath {
    /// `None` when `path` is not a drive or UNC path, or breaks a rule of [`check_dir_path`]
    /// (so it is within nothing).
    pub fn parse(path: &str) -> Option<WindowsPath> {
        check_dir_path(path).ok()?;
        let (root, rest) = match PathForm::of(path).ok()? {
            PathForm::Drive { letter, rest } => (format!("{}:", letter.to_ascii_lowercase()), rest),
            PathForm::Unc { host, share, rest } => (
                format!("\\\\{}\\{}", host.to_lowercase(), share.to_lowercase()),
                rest,
            ),
            PathForm::Unix { .. } => return None,
        };
        Some(WindowsPath {
            root,
            parts: components(rest).map(str::to_lowercase).collect(),
        })
    }

    /// Whether this path is `root` or inside it.
    pub fn is_within(&self, root: &WindowsPath) -> bool {
        self.root == root.root && self.parts.starts_with(&root.parts)
    }
}

impl std::fmt::Display for WindowsPath {
    /// The case-folded form, e.g. `\\host\f$\data`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root)?;
        if self.parts.is_empty() {
            return f.write_str("\\");
        }
        for part in &self.parts {
            write!(f, "\\{part}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runbooks_paths_pass() {
        for path in [
            "\\\\OLD\\F$\\",
            "\\\\OLD-n1\\f$\\Shares\\Finance",
            "F:\\",
            "f:/Data/./x",
            "/srv/in",
            "/srv/a:b",
            "//host/share/x",
        ] {
            assert_eq!(check_dir_path(path), Ok(()), "{path}");
        }
        for name in ["", "skeleton-FS01.log", "a b.log", ".hidden"] {
            assert_eq!(check_log_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn escapes_relatives_and_devices_are_refused() {
        for (path, rule) in [
            ("", "empty"),
            ("srv/in", "absolute"),
            ("..\\x", "absolute"),
            ("F:", "relative to that drive"),
            ("F:Data", "relative to that drive"),
            ("\\Data", "absolute"),
            ("/srv/in/../../etc", "`..`"),
            ("F:\\Shares\\..\\..\\Windows", "`..`"),
            ("\\\\OLD\\F$\\..\\C$", "`..`"),
            ("\\\\..\\F$", "`..`"),
            ("\\\\.\\PhysicalDrive0", "device namespace"),
            ("\\\\?\\C:\\Windows", "device namespace"),
            ("//./pipe/x", "device namespace"),
            ("\\??\\C:\\", "object namespace"),
            ("\\\\HOST", "host and a share"),
            ("\\\\\\share", "host and a share"),
            ("/dev/sda", "`/dev`"),
            ("/proc/self/root", "`/proc`"),
            ("/sys", "`/sys`"),
            ("F:\\Data\\NUL", "device name"),
            ("\\\\OLD\\F$\\com1.txt", "device name"),
            ("F:\\Data:secret", "alternate data stream"),
            ("/srv/in\n", "control"),
        ] {
            let got = check_dir_path(path);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(rule)),
                "{path:?}: {got:?}, expected {rule}"
            );
        }
        // `//sys/x` is a UNC path (host `sys`) as far as the text goes; on a Unix agent it is
        // `/sys/x`, which the agent's own check refuses once it has resolved it.
        assert!(check_dir_path("//sys/x").is_ok());
        assert!(check_dir_path("/sys/").is_err());
        assert!(check_dir_path("/system/x").is_ok());
    }

    #[test]
    fn a_log_is_a_plain_file_name() {
        for (name, rule) in [
            ("/srv/precious.db", "without a folder"),
            ("..\\x.log", "without a folder"),
            ("logs/x.log", "without a folder"),
            ("C:x.log", "drive or a stream"),
            ("x.log:stream", "drive or a stream"),
            ("..", "file name"),
            (".", "file name"),
            ("  ", "file name"),
            ("a\tb", "control"),
            ("NUL.log", "device name"),
            ("con", "device name"),
            ("LPT¹.txt", "device name"),
            ("x.log.", "dot or a space"),
        ] {
            let got = check_log_name(name);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(rule)),
                "{name:?}: {got:?}, expected {rule}"
            );
        }
        assert!(check_log_name(&"x".repeat(256)).is_err());
        assert!(check_log_name(&"x".repeat(255)).is_ok());
        assert!(!is_windows_device_name("COM10"));
        assert!(!is_windows_device_name("console"));
        assert!(!is_windows_device_name("co"));
    }

    #[test]
    fn windows_containment_is_lexical_and_case_insensitive() {
        let root = |p: &str| WindowsPath::parse(p).unwrap();
        let drive = root("F:\\");
        let share = root("\\\\NODE1\\F$\\Shares");
        assert!(root("f:/data").is_within(&drive));
        assert!(root("F:\\").is_within(&drive));
        assert!(!root("G:\\").is_within(&drive));
        assert!(root("\\\\node1\\f$\\SHARES\\x").is_within(&share));
        assert!(root("\\\\NODE1\\F$\\Shares").is_within(&share));
        assert!(!root("\\\\NODE1\\F$\\SharesX").is_within(&share));
        assert!(!root("\\\\NODE1\\F$\\").is_within(&share));
        assert!(!root("\\\\EVIL\\F$\\Shares").is_within(&share));
        assert!(!root("F:\\Shares").is_within(&share));
        for bad in ["/srv", "F:\\a\\..\\b", "\\\\?\\F:\\", "F:\\NUL", "F:"] {
            assert_eq!(WindowsPath::parse(bad), None, "{bad}");
        }
        assert_eq!(share.to_string(), "\\\\node1\\f$\\shares");
        assert_eq!(drive.to_string(), "f:\\");
    }
}
