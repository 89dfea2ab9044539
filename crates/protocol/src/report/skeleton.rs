//! The report of a skeleton copy (`skeleton_copy`): what was created, skipped and verified.

use serde::{Deserialize, Serialize};

/// At most this many error messages are kept in a report; `error_count` has the total.
pub const MAX_ERRORS_LISTED: usize = 100;

/// At most this many missing (and as many extra) directories are listed by a verification;
/// `missing_count` and `extra_count` have the totals.
pub const MAX_VERIFY_LISTED: usize = 1000;

/// What a skeleton copy did. Counts include the destination root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkeletonReport {
    pub dirs_created: u64,
    /// Destination directories that were already there (their metadata was applied again).
    pub dirs_existing: u64,
    /// Symbolic links seen where a directory could have been copied.
    pub skipped_links: u64,
    /// Files and other non-directories seen where a directory could have been copied.
    pub files_skipped: u64,
    pub xattrs_copied: u64,
    /// Extended attributes the destination refused as unsupported.
    #[serde(default)]
    pub xattrs_unsupported: u64,
    /// The first [`MAX_ERRORS_LISTED`] errors, `path: what: why`.
    pub errors: Vec<String>,
    pub error_count: u64,
    pub verification: Verification,
    /// Copy and verification together.
    pub elapsed_ms: u64,
}

impl SkeletonReport {
    /// Everything was copied and verified.
    pub fn succeeded(&self) -> bool {
        self.error_count == 0 && self.verification.passed
    }
}

/// A comparison of the directories of two trees within a depth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Source directories compared (the root included).
    pub checked: u64,
    /// Source directories absent at the destination, relative paths, sorted; at most
    /// [`MAX_VERIFY_LISTED`] (which ones, when there are more, is not specified).
    pub missing: Vec<String>,
    /// Destination directories the source does not have; listed like `missing`.
    pub extra: Vec<String>,
    /// Nothing missing and nothing unreadable. Extra directories do not fail a verification.
    pub passed: bool,
    #[serde(default)]
    pub missing_count: u64,
    #[serde(default)]
    pub extra_count: u64,
    /// Directories that could not be read, so were not verified; the first [`MAX_ERRORS_LISTED`].
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default)]
    pub error_count: u64,
}
