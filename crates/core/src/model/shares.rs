//! Comparing a group's shares with the ones it should have: what a migration's verification
//! proves, and what tells a running job that its source changed after the baseline was taken.

use std::collections::{BTreeMap, BTreeSet};

use super::{Share, ShareMismatch};

/// `found` against `expected`, share by share (names compare without case, as on Windows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareComparison {
    /// Expected shares present with the same path, permissions and flags.
    pub identical: u32,
    /// Expected shares absent.
    pub missing: Vec<String>,
    /// Expected shares present with other fields, naming the fields.
    pub changed: Vec<ShareMismatch>,
    /// Shares found that were not expected.
    pub unexpected: Vec<String>,
}

impl ShareComparison {
    /// Nothing missing, changed or unexpected.
    pub fn is_identical(&self) -> bool {
        self.missing.is_empty() && self.changed.is_empty() && self.unexpected.is_empty()
    }
}

pub fn compare_shares(expected: &[Share], found: &[Share]) -> ShareComparison {
    let key = |s: &Share| s.name.to_lowercase();
    let by_name: BTreeMap<String, &Share> = found.iter().map(|s| (key(s), s)).collect();
    let wanted: BTreeSet<String> = expected.iter().map(key).collect();
    let mut comparison = ShareComparison::default();
    for share in expected {
        match by_name.get(&key(share)) {
            None => comparison.missing.push(share.name.clone()),
            Some(got) => {
                let fields = differences(share, got);
                if fields.is_empty() {
                    comparison.identical += 1;
                } else {
                    comparison.changed.push(ShareMismatch {
                        share: share.name.clone(),
                        fields,
                    });
                }
            }
        }
    }
    comparison.unexpected = found
        .iter()
        .filter(|s| !wanted.contains(&key(s)))
        .map(|s| s.name.clone())
        .collect();
    comparison
}

/// The fields in which `got` differs from `want`.
fn differences(want: &Share, got: &Share) -> Vec<String> {
    let mut fields = Vec::new();
    if !want.path.eq_ignore_ascii_case(&got.path) {
        fields.push("path".to_owned());
    }
    let sorted = |s: &Share| {
        let mut p = s.permissions.clone();
        p.sort_by(|a, b| {
            (a.principal.to_lowercase(), a.ace_type, a.access).cmp(&(
                b.principal.to_lowercase(),
                b.ace_type,
                b.access,
            ))
        });
        p
    };
    if sorted(want) != sorted(got) {
        fields.push("permissions".to_owned());
    }
    if want.caching != got.caching {
        fields.push("caching".to_owned());
    }
    if want.access_based_enumeration != got.access_based_enumeration {
        fields.push("access_based_enumeration".to_owned());
    }
    if want.continuous_availability != got.continuous_availability {
        fields.push("continuous_availability".to_owned());
    }
    if want.encrypt_data != got.encrypt_data {
        fields.push("encrypt_data".to_owned());
    }
    if want.user_limit != got.user_limit {
        fields.push("user_limit".to_owned());
    }
    fields
}
