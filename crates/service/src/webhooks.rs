//! Webhooks (admin): registering receivers of job events, listing and deleting them; and what
//! the delivery loop every server runs (a transport's) reads and records.

use chrono::Utc;
use uuid::Uuid;

use crate::auth::{self, Caller};
use crate::{Replayable, Service, page_window, paginate};
use ferry_core::error::{Error, ErrorCode, Result};
use ferry_core::model::PageParams;
use ferry_core::model::{CreatedWebhook, NewWebhook, Page, Role, WebhookInfo};
use ferry_core::model::{JobEvent, Webhook, WebhookDelivery};
use ferry_store::EventFilter;

/// Prefix of generated webhook secrets, so a leaked one is recognisable.
const SECRET_PREFIX: &str = "fyw_";

impl Replayable for CreatedWebhook {
    fn for_replay(&self) -> Self {
        CreatedWebhook {
            info: self.info.clone(),
            secret: None,
        }
    }
}

fn info(hook: Webhook) -> WebhookInfo {
    WebhookInfo {
        id: hook.id,
        url: hook.url,
        job_id: hook.job_id,
        delivered: hook.delivered,
        failures: hook.failures,
        next_attempt: hook.next_attempt,
        last_error: hook.last_error,
        created_by: hook.created_by,
        created_at: hook.created_at,
    }
}

fn parse_webhook_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id)
        .map_err(|_| Error::not_found(format!("no webhook `{id}` (webhook ids are UUIDs)")))
}

impl Service {
    /// `POST /v1/webhooks`: registers a receiver. It gets events newer than the newest one now;
    /// history is not replayed, since a receiver that wants it can page `GET /v1/jobs/{id}/logs`.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        new: &NewWebhook,
    ) -> Result<CreatedWebhook> {
        let id = Uuid::now_v7();
        self.audited(
            caller,
            Role::Admin,
            "webhook.create",
            format!("webhook:{id}"),
            async {
                let errors = new.validate();
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                if let Some(job_id) = new.job_id {
                    self.store.get_job(job_id).await.map_err(|e| {
                        if e.code == ErrorCode::NotFound {
                            Error::invalid_field("job_id", format!("no job `{job_id}`"))
                        } else {
                            e
                        }
                    })?;
                }
                let secret = new
                    .secret
                    .clone()
                    .unwrap_or_else(|| auth::generate_secret_with(SECRET_PREFIX));
                let hook = Webhook {
                    id,
                    url: new.url.clone(),
                    secret: secret.clone(),
                    job_id: new.job_id,
                    delivered: self.store.newest_event_seq(new.job_id).await?,
                    failures: 0,
                    next_attempt: None,
                    last_error: None,
                    created_by: caller.name.clone(),
                    created_at: Utc::now(),
                };
                self.store.create_webhook(&hook).await?;
                Ok(CreatedWebhook {
                    info: info(hook),
                    secret: Some(secret),
                })
            },
        )
        .await
    }

    /// `GET /v1/webhooks`: oldest first, without secrets.
    pub async fn list_webhooks(
        &self,
        caller: &Caller,
        page: &PageParams,
    ) -> Result<Page<WebhookInfo>> {
        Self::require(caller, Role::Admin)?;
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| Uuid::parse_str(&a).map_err(|_| crate::invalid_cursor()))
            .transpose()?;
        // Webhooks are few (an operator registers them by hand), so the store lists them all and
        // the page is cut here.
        let rows: Vec<WebhookInfo> = self
            .store
            .list_webhooks()
            .await?
            .into_iter()
            .filter(|h| after.is_none_or(|a| h.id > a))
            .take(limit as usize + 1)
            .map(info)
            .collect();
        Ok(paginate(rows, limit, |h| h.id.to_string()))
    }

    /// `DELETE /v1/webhooks/{id}`: stops deliveries; returns the webhook as it was.
    pub async fn delete_webhook(&self, caller: &Caller, id: &str) -> Result<WebhookInfo> {
        self.audited(
            caller,
            Role::Admin,
            "webhook.delete",
            format!("webhook:{id}"),
            async {
                let id = parse_webhook_id(id)?;
                let missing = || Error::not_found(format!("no webhook `{id}`"));
                let hook = self
                    .store
                    .list_webhooks()
                    .await?
                    .into_iter()
                    .find(|h| h.id == id)
                    .ok_or_else(missing)?;
                if !self.store.delete_webhook(id).await? {
                    return Err(missing());
                }
                Ok(info(hook))
            },
        )
        .await
    }
}

/// The delivery loop's side: no caller, since it is the server's own work.
impl Service {
    /// Every webhook with its delivery mark, oldest first.
    pub async fn webhooks_to_deliver(&self) -> Result<Vec<Webhook>> {
        self.store.list_webhooks().await
    }

    /// The events `hook` has not acknowledged yet, oldest first, at most `limit`.
    pub async fn webhook_backlog(&self, hook: &Webhook, limit: u32) -> Result<Vec<JobEvent>> {
        let filter = EventFilter {
            job_id: hook.job_id,
            ..EventFilter::default()
        };
        self.store.job_events(&filter, hook.delivered, limit).await
    }

    /// Takes `hook`'s next delivery until `until`: false when another replica has it.
    pub async fn claim_webhook_delivery(
        &self,
        hook: &Webhook,
        until: chrono::DateTime<Utc>,
    ) -> Result<bool> {
        self.store
            .claim_webhook_delivery(hook.id, hook.delivered, Utc::now(), until)
            .await
    }

    /// Records a delivery attempt: `delivered` is the last event sequence acknowledged.
    pub async fn record_webhook_delivery(
        &self,
        id: Uuid,
        delivery: &WebhookDelivery,
    ) -> Result<()> {
        self.store.record_webhook_delivery(id, delivery).await
    }
}
