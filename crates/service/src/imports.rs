//! The one path every inventory takes into the store, whoever sends it: an operator's `PUT`, an
//! agent's report after a share scan, a discovery. The document is validated, put in canonical
//! form and hashed; identical content gives no new snapshot. A snapshot that differs from the one
//! before it is announced (`inventory.changed`, with what changed) in the same transaction, and a
//! running job whose source it is learns whether its baselines still hold.

use chrono::Utc;
use uuid::Uuid;

use crate::Service;
use crate::agents::agent_actor;
use ferry_core::error::{Error, ErrorCode, Result};
use ferry_core::model::diff::{ChangeSummary, diff_inventories};
use ferry_core::model::{
    Agent, Cluster, DiscoveryReceipt, Finding, GroupState, INVENTORY_CHANGED, InventoryChange,
    InventoryDocument, JOB_FINDING, NewJobEvent, Severity, compare_shares,
};
use ferry_store::{ChangeEvent, ImportOutcome, InventoryImport};

/// The check of the findings a job gets when its source changes after a baseline was taken.
pub const SOURCE_DRIFT: &str = "source_drift";

/// Share names a drift finding lists before it says how many more there are.
const NAMES_LISTED: usize = 10;

/// What an import stored, and how it differs from the snapshot before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub outcome: ImportOutcome,
    /// Against the snapshot that was the newest before: `None` when there was none, all zero
    /// when the content was unchanged.
    pub change: Option<ChangeSummary>,
}

impl From<Imported> for DiscoveryReceipt {
    fn from(imported: Imported) -> Self {
        DiscoveryReceipt {
            snapshot: imported.outcome.snapshot.number,
            created: imported.outcome.created,
            previous_snapshot: imported.outcome.previous,
            summary: imported.change,
        }
    }
}

/// What must hold of the cluster's newest snapshot for an import to happen (`If-Match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition<'a> {
    None,
    /// `*`: some snapshot exists.
    AnySnapshot,
    /// The newest snapshot has this content hash.
    Hash(&'a str),
}

impl Service {
    /// Validates, canonicalises and stores `document` as the next snapshot of the cluster
    /// `cluster_key` names, by `actor` (a token's name, or `agent:<id>`), when `precondition`
    /// holds.
    pub(crate) async fn import_document(
        &self,
        actor: &str,
        cluster_key: &str,
        mut document: InventoryDocument,
        precondition: Precondition<'_>,
    ) -> Result<Imported> {
        let errors = document.validate();
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let cluster = self.store.get_cluster(cluster_key).await?;
        let expected_hash = match precondition {
            Precondition::None => None,
            Precondition::AnySnapshot if cluster.latest_snapshot.is_none() => {
                return Err(Error::precondition_failed(format!(
                    "If-Match: * requires an existing snapshot, and cluster `{}` has none",
                    cluster.name
                )));
            }
            Precondition::AnySnapshot => None,
            Precondition::Hash(hash) => Some(hash),
        };
        let cluster = &cluster;
        document.canonicalize();
        let (json, hash) = document.canonical_json();
        // What changed against the newest snapshot, so the announcement can commit with it. Its
        // hash is compared first: an unchanged inventory (most periodic discoveries) needs no
        // diff, so the newest document is then neither read nor parsed.
        let newest = match cluster.latest_snapshot {
            Some(number)
                if self.snapshot_hash(cluster.id, number).await?.as_deref()
                    == Some(hash.as_str()) =>
            {
                Some((number, None))
            }
            Some(number) => Some((
                number,
                Some(self.snapshot_document(cluster.id, number).await?),
            )),
            None => None,
        };
        let change = match &newest {
            Some((number, Some((previous_hash, previous)))) if *previous_hash != hash => {
                let summary = diff_inventories(previous, &document).change_summary();
                Some((*number, summary))
            }
            _ => None,
        };
        let event = change.as_ref().map(|(against, summary)| {
            change_event(cluster, *against + 1, *against, actor, summary)
        });
        let outcome = self
            .store
            .import_inventory(InventoryImport {
                cluster_id: cluster.id,
                document: &document,
                document_json: &json,
                content_hash: &hash,
                counts: document.counts(),
                created_by: actor,
                expected_hash,
                change: change
                    .as_ref()
                    .zip(event.as_ref())
                    .map(|((against, _), event)| ChangeEvent {
                        against: *against,
                        event,
                    }),
            })
            .await?;
        let change = match (outcome.created, outcome.previous) {
            (false, Some(_)) => Some(ChangeSummary::default()),
            (_, None) => None,
            (true, Some(_)) if outcome.change_recorded => change.map(|(_, summary)| summary),
            (true, Some(previous)) => {
                // Another import landed between the read above and this one: announce the
                // difference from what it left, after the fact.
                Some(
                    self.announce_late(cluster, &outcome, previous, actor, &document)
                        .await?,
                )
            }
        };
        if outcome.created
            && newest.is_some()
            && let Err(e) = self
                .check_drift(cluster, outcome.snapshot.number, &document)
                .await
        {
            // The snapshot is stored; the next one checks the jobs again.
            tracing::warn!(cluster = %cluster.name, error = %e, "could not check running jobs for drift");
        }
        Ok(Imported { outcome, change })
    }

    /// The content hash of a stored snapshot, without its document.
    async fn snapshot_hash(&self, cluster_id: Uuid, number: i64) -> Result<Option<String>> {
        let info = self
            .store
            .list_snapshots(cluster_id, 1, Some(number - 1))
            .await?;
        Ok(info
            .into_iter()
            .find(|s| s.number == number)
            .map(|s| s.content_hash))
    }

    /// The content hash and document of a stored snapshot.
    async fn snapshot_document(
        &self,
        cluster_id: Uuid,
        number: i64,
    ) -> Result<(String, InventoryDocument)> {
        let (info, json) = self.store.get_snapshot(cluster_id, number).await?;
        let document = serde_json::from_str(&json).map_err(Error::internal)?;
        Ok((info.content_hash, document))
    }

    async fn announce_late(
        &self,
        cluster: &Cluster,
        outcome: &ImportOutcome,
        previous: i64,
        actor: &str,
        document: &InventoryDocument,
    ) -> Result<ChangeSummary> {
        let (_, before) = self.snapshot_document(cluster.id, previous).await?;
        let summary = diff_inventories(&before, document).change_summary();
        let event = change_event(cluster, outcome.snapshot.number, previous, actor, &summary);
        self.store
            .record_cluster_events(cluster.id, &[event], Utc::now())
            .await?;
        Ok(summary)
    }

    /// An agent's inventory report, imported as its cluster's snapshot and audited as the agent.
    /// `claimed` is the cluster the agent says the inventory is of (empty: its own); one that is
    /// not the agent's cluster is refused with `PermissionDenied` and audited as denied.
    pub async fn import_agent_report(
        &self,
        agent: &Agent,
        claimed: &str,
        document: InventoryDocument,
        source: Option<String>,
    ) -> Result<Imported> {
        let actor = agent_actor(agent.id);
        let own = claimed.is_empty()
            || claimed.eq_ignore_ascii_case(&agent.cluster_name)
            || claimed == agent.cluster_id.to_string();
        let target = format!(
            "cluster:{}",
            if own {
                agent.cluster_name.as_str()
            } else {
                claimed
            }
        );
        let result = async {
            if !own {
                return Err(Error::permission_denied(format!(
                    "agent `{}` is enrolled for cluster `{}` and may not report cluster `{claimed}`",
                    agent.id, agent.cluster_name
                )));
            }
            self.import_document(
                &actor,
                &agent.cluster_id.to_string(),
                document,
                Precondition::None,
            )
            .await
        }
        .await;
        self.audit(&actor, source, "inventory.report", target, &result)
            .await;
        result
    }

    /// Compares the baselines of the running jobs whose source is `cluster` with its new
    /// `document`: a group whose source shares changed after its baseline was taken, and before
    /// its cutover took the source offline, gets a finding naming them (and loses it once they
    /// are back as they were). Each change of a job's findings is announced as a `finding` event.
    async fn check_drift(
        &self,
        cluster: &Cluster,
        snapshot: i64,
        document: &InventoryDocument,
    ) -> Result<()> {
        for active in self.store.active_jobs().await? {
            let job = self.store.get_job(active.id).await?;
            let source = &job.request.source;
            if !source.eq_ignore_ascii_case(&cluster.name) && *source != cluster.id.to_string() {
                continue;
            }
            let mut checked = Vec::new();
            let mut drifted = Vec::new();
            for group in self.store.job_groups(job.id).await? {
                // Before the baseline there is nothing to drift from; from the cutover on, the
                // source group is offline and the migration has what it had.
                let serving = matches!(
                    group.state,
                    GroupState::Preparing
                        | GroupState::AwaitingWindow
                        | GroupState::AwaitingApproval
                );
                if !serving {
                    continue;
                }
                let Some(baseline) = self.store.job_baseline(job.id, &group.name).await? else {
                    continue;
                };
                checked.push(group.name.clone());
                let now = document
                    .groups
                    .iter()
                    .find(|g| g.name.eq_ignore_ascii_case(&group.name))
                    .map_or(&[][..], |g| g.shares.as_slice());
                let comparison = compare_shares(&baseline, now);
                if comparison.is_identical() {
                    continue;
                }
                let mut parts = Vec::new();
                let list = |names: Vec<String>| {
                    let more = names.len().saturating_sub(NAMES_LISTED);
                    let mut listed: Vec<String> = names.into_iter().take(NAMES_LISTED).collect();
                    if more > 0 {
                        listed.push(format!("and {more} more"));
                    }
                    listed.join(", ")
                };
                if !comparison.missing.is_empty() {
                    parts.push(format!("removed {}", list(comparison.missing)));
                }
                if !comparison.changed.is_empty() {
                    let changed = comparison
                        .changed
                        .into_iter()
                        .map(|m| format!("{} ({})", m.share, m.fields.join(", ")))
                        .collect();
                    parts.push(format!("changed {}", list(changed)));
                }
                if !comparison.unexpected.is_empty() {
                    parts.push(format!("added {}", list(comparison.unexpected)));
                }
                drifted.push(
                    Finding::new(
                        Severity::Warn,
                        SOURCE_DRIFT,
                        format!(
                            "{} changed on the source {} after its baseline was taken (snapshot \
                             {snapshot}): {}; the verification compares with the baseline",
                            group.name,
                            cluster.name,
                            parts.join("; ")
                        ),
                    )
                    .for_group(&group.name),
                );
            }
            // Findings of groups not checked now stay as they were.
            let mut findings: Vec<Finding> = job
                .findings
                .iter()
                .filter(|f| {
                    f.check != SOURCE_DRIFT
                        || !f.group.as_ref().is_some_and(|g| checked.contains(g))
                })
                .cloned()
                .collect();
            findings.extend(drifted.iter().cloned());
            if findings == job.findings {
                continue;
            }
            let events: Vec<NewJobEvent> = drifted
                .iter()
                .filter(|f| !job.findings.contains(f))
                .map(|f| NewJobEvent {
                    kind: JOB_FINDING,
                    group: f.group.clone(),
                    state: "warn".into(),
                    message: Some(f.message.clone()),
                    ..NewJobEvent::default()
                })
                .collect();
            for finding in &events {
                tracing::warn!(job = %job.id, "{}", finding.message.as_deref().unwrap_or(""));
            }
            match self
                .store
                .set_job_findings(job.id, &findings, &events, Utc::now())
                .await
            {
                Ok(()) => {}
                // Finished and deleted meanwhile: nothing to tell it.
                Err(e) if e.code == ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The `inventory.changed` event of `cluster`'s snapshot `snapshot`, compared with `previous`.
fn change_event(
    cluster: &Cluster,
    snapshot: i64,
    previous: i64,
    actor: &str,
    summary: &ChangeSummary,
) -> NewJobEvent {
    let data = InventoryChange {
        cluster_id: cluster.id,
        cluster: cluster.name.clone(),
        snapshot,
        previous_snapshot: previous,
        by: actor.to_owned(),
        summary: *summary,
    };
    NewJobEvent {
        kind: INVENTORY_CHANGED,
        state: "changed".into(),
        message: Some(format!(
            "{}: snapshot {snapshot} differs from {previous}: {}",
            cluster.name,
            summary.line()
        )),
        data: serde_json::to_value(&data).ok(),
        ..NewJobEvent::default()
    }
}
