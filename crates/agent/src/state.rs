//! The agent's state directory and its identity file.
//!
//! The identity (agent id and secret) is what the join token bought: with it the agent never
//! needs the join token again. It is a credential, so the directory is private to the agent's
//! user (0700) and the file is written 0600, atomically (a temporary file renamed over the old
//! one), so a crash mid-write never leaves an agent without its identity. On Windows the
//! directory's ACL is what protects it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The identity file inside the state directory.
pub const IDENTITY_FILE: &str = "agent.json";

/// Who this agent is, as the server enrolled it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub agent_id: Uuid,
    pub secret: String,
    /// The cluster as given at enrollment (id or name).
    pub cluster: String,
    /// Sent in every Hello.
    pub cluster_id: Uuid,
    pub node: String,
    pub enrolled_at: DateTime<Utc>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret must not reach a log through a stray `{:?}`.
        f.debug_struct("Identity")
            .field("agent_id", &self.agent_id)
            .field("secret", &"***")
            .field("cluster", &self.cluster)
            .field("cluster_id", &self.cluster_id)
            .field("node", &self.node)
            .field("enrolled_at", &self.enrolled_at)
            .finish()
    }
}

/// The directory where an agent keeps what survives a restart.
#[derive(Debug, Clone)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    /// Opens the directory, creating it (0700) if missing.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(path)
                .with_context(|| format!("creating the state directory {}", path.display()))?;
        } else if !path.is_dir() {
            anyhow::bail!("the state directory {} is not a directory", path.display());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    dir = %path.display(),
                    mode = format!("{mode:o}"),
                    "the state directory is readable by other users; it holds the agent's secret"
                );
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn identity_path(&self) -> PathBuf {
        self.path.join(IDENTITY_FILE)
    }

    /// The stored identity, if the agent enrolled before.
    pub fn load_identity(&self) -> anyhow::Result<Option<Identity>> {
        let path = self.identity_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "{} is not a valid identity file; move it away and enroll again",
                path.display()
            )
        })
    }

    /// Writes the identity atomically, readable by the agent's user only.
    pub fn save_identity(&self, identity: &Identity) -> anyhow::Result<()> {
        let path = self.identity_path();
        let temporary = self.path.join(format!("{IDENTITY_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(identity).context("encoding the identity")?;
        let _ = fs::remove_file(&temporary);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        file.write_all(&json)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &path)
            .with_context(|| format!("moving the identity into {}", path.display()))?;
        // The rename is only durable once the directory entry is.
        #[cfg(unix)]
        if let Ok(dir) = fs::File::open(&self.path) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            agent_id: Uuid::now_v7(),
            secret: "fya_secret".into(),
            cluster: "FS-NEW".into(),
            cluster_id: Uuid::now_v7(),
            node: "N1".into(),
            enrolled_at: Utc::now(),
        }
    }

    #[test]
    fn identity_round_trips_privately() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(&dir.path().join("state")).unwrap();
        assert!(state.load_identity().unwrap().is_none());
        let id = identity();
        state.save_identity(&id).unwrap();
        state.save_identity(&id).unwrap();
        assert_eq!(state.load_identity().unwrap(), Some(id.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(state.path()), 0o700);
            assert_eq!(mode(&state.identity_path()), 0o600);
        }
        assert!(!format!("{id:?}").contains("fya_secret"));
    }

    #[test]
    fn a_corrupt_identity_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        fs::write(state.identity_path(), "{").unwrap();
        let err = state.load_identity().unwrap_err().to_string();
        assert!(err.contains("enroll again"), "{err}");
    }
}
