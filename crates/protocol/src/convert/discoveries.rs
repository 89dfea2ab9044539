//! Discoveries and the change summaries they end with -> protobuf.

use super::timestamp;
use crate::pb;
use ferry_core::model::diff::ChangeSummary;
use ferry_core::model::{Discovery, DiscoveryState, DiscoveryTrigger};

impl From<ChangeSummary> for pb::ChangeSummary {
    fn from(s: ChangeSummary) -> Self {
        pb::ChangeSummary {
            groups: Some(s.groups.into()),
            shares: Some(s.shares.into()),
            permissions: Some(s.permissions.into()),
            other: Some(s.other.into()),
        }
    }
}

enum_pair!(DiscoveryState => DiscoveryState {
    Running => Running,
    Completed => Completed,
    Failed => Failed,
});

enum_pair!(DiscoveryTrigger => DiscoveryTrigger {
    Operator => Operator,
    Schedule => Schedule,
});

impl From<Discovery> for pb::Discovery {
    fn from(d: Discovery) -> Self {
        pb::Discovery {
            id: d.id.to_string(),
            cluster_id: d.cluster_id.to_string(),
            cluster: d.cluster,
            state: pb::DiscoveryState::from(d.state) as i32,
            trigger: pb::DiscoveryTrigger::from(d.trigger) as i32,
            task_id: d.task_id.map(|t| t.to_string()).unwrap_or_default(),
            snapshot: d.snapshot,
            created: d.created,
            previous_snapshot: d.previous_snapshot,
            summary: d.summary.map(Into::into),
            error: d.error,
            created_by: d.created_by,
            created_at: Some(timestamp(d.created_at)),
            completed_at: d.completed_at.map(timestamp),
        }
    }
}
