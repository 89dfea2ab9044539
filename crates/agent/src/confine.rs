//! What an agent may touch, and the check every path of a task passes before anything opens it.
//!
//! An agent runs as root (SYSTEM on Windows) and obeys whoever holds an operator token, so the
//! paths a task names are confined to what the agent's configuration allows: the folders given
//! with `--allow-path`, or without any, what its cluster driver reports
//! ([`crate::driver::ClusterDriver::default_roots`]: the cluster's disks). Logs go to the agent's
//! own log directory, never where a task says.
//!
//! A directory a task names (a skeleton copy's source or destination) passes these rules in order;
//! the first it breaks fails the task with kind [`TaskError::FORBIDDEN`], naming the path and the
//! rule:
//!
//! 1. The text rules the server applies too ([`paths::check_dir_path`]): absolute, no `..`, no
//!    device namespace, device name or stream. The executor checks them on the task's own text.
//! 2. The driver says where the path is on this machine (`LocalPaths::copy_path`).
//! 3. A Windows path (drive or UNC) must lie, as text, under an allowed root of that form, before
//!    anything opens it: merely opening `\\HOST\...` makes Windows authenticate to `HOST`.
//! 4. The path is resolved: its deepest existing ancestor is canonicalised (symbolic links and
//!    junctions followed), the part that does not exist yet appended. A link to nothing is
//!    refused: creating through it would land wherever it points.
//! 5. The resolved path must lie under an allowed root, itself resolved (a root that does not
//!    exist allows nothing). A symbolic link inside a root that points out is refused here.
//! 6. It must neither lie in the agent's state directory nor contain it: that holds the agent's
//!    identity and logs, and a copy onto it would give it the source's owner and mode.
//! 7. What exists must be a directory: a device, fifo, socket or file is refused where a
//!    directory is expected.
//!
//! The copy then opens the resolved path, not the one the task gave.

use std::fs;
use std::path::{Component, Path, PathBuf};

use uuid::Uuid;

use ferry_core::model::TaskError;
use ferry_core::model::paths::{self, PathForm, WindowsPath};

/// Folder of the state directory that holds the agent's logs.
pub const LOG_DIR: &str = "logs";

/// A refusal: the task fails with kind `forbidden`, naming the field, the path and the rule.
pub fn forbidden(field: &str, path: &str, rule: &str) -> TaskError {
    TaskError {
        kind: TaskError::FORBIDDEN.into(),
        message: format!("{field} `{path}` refused: {rule}"),
        retryable: false,
    }
}

/// Where the allowed roots came from, for the messages of refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootsOrigin {
    /// The agent's `--allow-path` list.
    Configured,
    /// The driver's defaults (the agent was given no `--allow-path`).
    Driver,
}

/// The allowed roots of one task and the agent's state directory.
#[derive(Debug, Clone)]
pub struct Confinement {
    roots: Vec<PathBuf>,
    origin: RootsOrigin,
    state_dir: Option<PathBuf>,
}

impl Confinement {
    pub fn new(roots: Vec<PathBuf>, origin: RootsOrigin, state_dir: Option<PathBuf>) -> Self {
        Confinement {
            roots,
            origin,
            state_dir,
        }
    }

    /// The allowed roots as configured or reported, before resolution.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn outside(&self) -> String {
        match (self.origin, self.roots.is_empty()) {
            (RootsOrigin::Configured, _) => {
                "outside every folder of the agent's --allow-path list".into()
            }
            (RootsOrigin::Driver, false) => {
                "outside every disk of the agent's cluster (the agent has no --allow-path)".into()
            }
            (RootsOrigin::Driver, true) => {
                "this agent may touch no folder: its driver reports no cluster disk and it was \
                 given no --allow-path"
                    .into()
            }
        }
    }

    /// Rule 3: a drive or UNC path lies, as text, under an allowed root of that form; a path of
    /// no absolute form is refused. Unix paths pass (they are resolved next). Touches nothing.
    pub fn check_windows_text(&self, local: &Path) -> Result<(), String> {
        let Some(text) = local.to_str() else {
            return Ok(());
        };
        // A relative path of this machine (a driver answering under a relative `--sim-dir`) is
        // made absolute and resolved next; only what Windows would read as a drive, UNC or
        // device path is this rule's.
        let windows_looking = text.starts_with('\\')
            || text.starts_with("//")
            || text.as_bytes().get(1) == Some(&b':');
        if !windows_looking {
            return Ok(());
        }
        match PathForm::of(text) {
            Ok(form) if form.is_windows() => {}
            Ok(_) => return Ok(()),
            // A device namespace, a drive-relative or relative path: nothing to open.
            Err(rule) => return Err(rule),
        }
        let Some(path) = WindowsPath::parse(text) else {
            return Err(paths::check_dir_path(text)
                .err()
                .unwrap_or_else(|| "is not a folder path".into()));
        };
        let within = self
            .roots
            .iter()
            .filter_map(|root| WindowsPath::parse(root.to_str()?))
            .any(|root| path.is_within(&root));
        if within { Ok(()) } else { Err(self.outside()) }
    }

    /// Rules 3 to 7 for the directory `local`, which the driver made of the task's `given` path
    /// (rules 1 and 2). It need not exist (a destination is created; a missing source is the
    /// copy's to report), but what exists of it must be a directory. Answers the resolved path,
    /// which is what the caller must open. Blocking: it looks at the file system.
    pub fn directory(&self, field: &str, given: &str, local: &Path) -> Result<PathBuf, TaskError> {
        let refuse = |rule: String| forbidden(field, given, &rule);
        self.check_windows_text(local).map_err(refuse)?;
        // A driver may answer relative to the agent's working directory (a relative
        // `--sim-dir`); the task's own text was absolute (rule 1).
        let local = &std::path::absolute(local).map_err(|e| refuse(format!("{e}")))?;
        let resolved = resolve(local).map_err(refuse)?;
        let shown = |rule: String| {
            if resolved.path == *local {
                rule
            } else {
                format!("resolves to `{}`, {rule}", resolved.path.display())
            }
        };
        let within = self
            .roots
            .iter()
            .filter_map(|root| fs::canonicalize(root).ok())
            .any(|root| resolved.path.starts_with(root));
        if !within {
            return Err(refuse(shown(self.outside())));
        }
        if let Some(state) = self
            .state_dir
            .as_ref()
            .and_then(|dir| fs::canonicalize(dir).ok())
            && (resolved.path.starts_with(&state) || state.starts_with(&resolved.path))
        {
            return Err(refuse(shown(format!(
                "overlaps the agent's own state directory `{}`, which holds its identity and \
                 logs",
                state.display()
            ))));
        }
        if resolved.exists {
            let meta = fs::metadata(&resolved.path)
                .map_err(|e| refuse(shown(format!("cannot be looked at: {e}"))))?;
            if !meta.is_dir() {
                return Err(refuse(shown(format!(
                    "is {}, not a directory",
                    describe(&meta.file_type())
                ))));
            }
        } else {
            // What exists of a path still to be created must be a directory to create in; a
            // missing source is the copy's to report.
            let meta = fs::metadata(&resolved.base)
                .map_err(|e| refuse(shown(format!("cannot be looked at: {e}"))))?;
            if !meta.is_dir() {
                return Err(refuse(shown(format!(
                    "`{}` is {}, not a directory",
                    resolved.base.display(),
                    describe(&meta.file_type())
                ))));
            }
        }
        Ok(resolved.path)
    }
}

/// A path as this machine resolves it.
struct Resolved {
    /// Canonical ancestor + the part that does not exist yet.
    path: PathBuf,
    /// The deepest existing ancestor, canonical.
    base: PathBuf,
    /// The whole path exists.
    exists: bool,
}

fn resolve(local: &Path) -> Result<Resolved, String> {
    if !local.is_absolute() {
        return Err("is not an absolute path on this machine".into());
    }
    if local
        .components()
        .any(|c| matches!(c, Component::ParentDir))
    {
        return Err("must not contain `..`".into());
    }
    let mut base = local.to_path_buf();
    let mut missing = Vec::new();
    loop {
        match fs::symlink_metadata(&base) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = base.file_name() else {
                    return Err(format!("no part of it exists: {e}"));
                };
                missing.push(name.to_owned());
                if !base.pop() {
                    return Err(format!("no part of it exists: {e}"));
                }
            }
            Err(e) => return Err(format!("cannot be looked at: {e}")),
        }
    }
    let base = fs::canonicalize(&base).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("`{}` is a symbolic link to nothing", base.display())
        } else {
            format!("`{}` cannot be resolved: {e}", base.display())
        }
    })?;
    let mut path = base.clone();
    path.extend(missing.iter().rev());
    Ok(Resolved {
        exists: missing.is_empty(),
        path,
        base,
    })
}

fn describe(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_fifo() {
            return "a fifo";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a file"
    } else {
        "not a folder"
    }
}

/// Where a skeleton copy of task `task` writes its log: `<state_dir>/logs/<log_path>` when
/// `log_path` is a plain file name, `<state_dir>/logs/<task>.log` when it is empty; anything else
/// is refused. The log directory is created (private to the agent's user); a log that exists as
/// anything but a regular file of one link (a symbolic or hard link planted to have the agent
/// truncate another file) is refused.
pub fn log_file(
    state_dir: Option<&Path>,
    task: Uuid,
    log_path: &str,
) -> Result<PathBuf, TaskError> {
    let refuse = |rule: &str| forbidden("log_path", log_path, rule);
    paths::check_log_name(log_path).map_err(|rule| refuse(&rule))?;
    let Some(state_dir) = state_dir else {
        return Err(refuse(
            "this agent has no state directory, so no log directory to write in",
        ));
    };
    let dir = state_dir.join(LOG_DIR);
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).map_err(|e| TaskError {
        kind: "io".into(),
        message: format!("cannot create the log directory {}: {e}", dir.display()),
        retryable: false,
    })?;
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        _ => {
            return Err(refuse(&format!(
                "the log directory `{}` is not a directory of its own",
                dir.display()
            )));
        }
    }
    let name = if log_path.is_empty() {
        format!("{task}.log")
    } else {
        log_path.to_owned()
    };
    let file = dir.join(name);
    match fs::symlink_metadata(&file) {
        Ok(meta) if !meta.file_type().is_file() => Err(refuse(&format!(
            "`{}` exists and is {}, not a log file",
            file.display(),
            describe(&meta.file_type())
        ))),
        #[cfg(unix)]
        Ok(meta) if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 => Err(refuse(&format!(
            "`{}` has other hard links, so truncating it would change another file",
            file.display()
        ))),
        _ => Ok(file),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn confinement(roots: &[&Path], state: &Path) -> Confinement {
        Confinement::new(
            roots.iter().map(|r| r.to_path_buf()).collect(),
            RootsOrigin::Configured,
            Some(state.to_path_buf()),
        )
    }

    #[test]
    fn a_path_inside_a_root_resolves_and_passes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("in/a")).unwrap();
        let c = confinement(&[&root], &t.path().join("state"));
        let given = root.join("in");
        let got = c.directory("source", "x", &given).unwrap();
        assert_eq!(got, fs::canonicalize(&given).unwrap());
        // A destination that does not exist yet, several levels deep.
        let deep = root.join("out/b/c");
        let got = c.directory("destination", "x", &deep).unwrap();
        assert_eq!(got, fs::canonicalize(&root).unwrap().join("out/b/c"));
        // The root itself.
        assert!(c.directory("destination", "x", &root).is_ok());
    }

    #[test]
    fn escapes_are_refused_with_the_rule() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        std::os::unix::fs::symlink(t.path().join("nowhere"), root.join("dangling")).unwrap();
        fs::write(root.join("file"), b"x").unwrap();
        let state = root.join("state");
        fs::create_dir_all(&state).unwrap();
        let c = confinement(&[&root], &state);
        let refused = |path: &Path| {
            let e = c.directory("source", "given", path).unwrap_err();
            assert_eq!(e.kind, TaskError::FORBIDDEN);
            assert!(!e.retryable);
            assert!(e.message.starts_with("source `given` refused: "), "{e:?}");
            e.message
        };
        let m = refused(&outside);
        assert!(m.contains("--allow-path"), "{m}");
        let m = refused(&root.join("link"));
        assert!(m.contains("resolves to") && m.contains("outside"), "{m}");
        let m = refused(&root.join("link/new"));
        assert!(m.contains("outside"), "{m}");
        let m = refused(&root.join("dangling"));
        assert!(m.contains("symbolic link to nothing"), "{m}");
        let m = refused(&root.join("file"));
        assert!(m.contains("is a file, not a directory"), "{m}");
        let m = refused(&root.join("file/sub"));
        assert!(m.contains("Not a directory"), "{m}");
        let m = refused(&state.join("x"));
        assert!(m.contains("state directory"), "{m}");
        let m = refused(&root);
        assert!(m.contains("state directory"), "{m}");
        // A relative path is this machine's, from the working directory: outside here.
        let m = refused(Path::new("relative"));
        assert!(m.contains("outside"), "{m}");
        let m = refused(Path::new("/dev/null"));
        assert!(m.contains("outside"), "{m}");
        // A fifo inside the root is not a folder.
        let fifo = root.join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let m = refused(&fifo);
        assert!(m.contains("a fifo, not a directory"), "{m}");
        // Without any root, nothing is allowed.
        let none = Confinement::new(Vec::new(), RootsOrigin::Driver, None);
        let e = none.directory("source", "given", &root).unwrap_err();
        assert!(e.message.contains("no --allow-path"), "{e:?}");
    }

    #[test]
    fn windows_text_is_checked_before_anything_is_opened() {
        let c = Confinement::new(
            vec![PathBuf::from("F:\\"), PathBuf::from("\\\\N1\\F$\\")],
            RootsOrigin::Driver,
            None,
        );
        for ok in [
            "f:\\Data",
            "\\\\n1\\f$\\Shares",
            "/srv/unix/is/resolved/next",
        ] {
            assert_eq!(c.check_windows_text(Path::new(ok)), Ok(()), "{ok}");
        }
        for bad in [
            "G:\\",
            "\\\\EVIL\\F$\\",
            "\\\\N1\\C$\\Windows",
            "C:\\Windows",
        ] {
            let e = c.check_windows_text(Path::new(bad)).unwrap_err();
            assert!(e.contains("cluster"), "{bad}: {e}");
        }
        for bad in [
            "\\\\?\\F:\\",
            "\\\\.\\PhysicalDrive0",
            "F:relative",
            "\\relative",
        ] {
            assert!(c.check_windows_text(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn logs_go_to_the_log_directory_named_by_the_task() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path().join("state");
        let task = Uuid::now_v7();
        let named = log_file(Some(&state), task, "skeleton-FS01.log").unwrap();
        assert_eq!(named, state.join(LOG_DIR).join("skeleton-FS01.log"));
        assert!(state.join(LOG_DIR).is_dir());
        let by_task = log_file(Some(&state), task, "").unwrap();
        assert_eq!(by_task, state.join(LOG_DIR).join(format!("{task}.log")));
        for bad in ["/srv/precious.db", "../x.log", "C:\\x.log", "NUL"] {
            let e = log_file(Some(&state), task, bad).unwrap_err();
            assert_eq!(e.kind, TaskError::FORBIDDEN, "{bad}");
            assert!(e.message.contains(bad), "{e:?}");
        }
        assert_eq!(
            log_file(None, task, "x.log").unwrap_err().kind,
            TaskError::FORBIDDEN
        );
        // A link planted in the log directory is not followed.
        let precious = t.path().join("precious.db");
        fs::write(&precious, b"keep").unwrap();
        std::os::unix::fs::symlink(&precious, state.join(LOG_DIR).join("soft.log")).unwrap();
        fs::hard_link(&precious, state.join(LOG_DIR).join("hard.log")).unwrap();
        for planted in ["soft.log", "hard.log"] {
            let e = log_file(Some(&state), task, planted).unwrap_err();
            assert_eq!(e.kind, TaskError::FORBIDDEN, "{planted}");
        }
        assert_eq!(fs::read(&precious).unwrap(), b"keep");
    }
}
