//! The order system (ERP) connector: where `submit-pending-orders` sends
//! each order and gets its order number back.
//!
//! Two implementations: [`HttpErp`] posts to `HERALD_ERP_URL`; without one,
//! [`LocalNumbering`] assigns `ORD-<year>-<counter>` numbers from a counter
//! in the database (unique across restarts).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use entity::counters;
use sea_orm::{
    sea_query::{Expr, ExprTrait},
    ActiveValue::Set,
    ColumnTrait, EntityTrait, QueryFilter,
};
use serde_json::json;

use crate::{core::wire::dashboard::PendingOrder, store::db::Db};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ErpError {
    /// The order system refused this order (it will refuse it again).
    #[error("rejected by the order system: {0}")]
    Rejected(String),
    /// The order system could not be reached (after retries).
    #[error("order system unreachable: {0}")]
    Unavailable(String),
}

pub type ErpFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ErpError>> + Send + 'a>>;

pub trait ErpConnector: Send + Sync {
    /// Sends one order; answers its order number.
    fn submit<'a>(&'a self, order: &'a PendingOrder) -> ErpFuture<'a>;
}

/// `POST {url}` with `{"pendingOrderId","userId","payload"}` and an
/// `Idempotency-Key` (the pending order's id), expecting `{"orderNumber"}`.
/// 4xx (but 408 and 429) is a rejection; anything else is retried with
/// exponential backoff, then reported unreachable.
pub struct HttpErp {
    client: reqwest::Client,
    url: String,
    retries: u32,
    backoff: Duration,
}

impl HttpErp {
    pub fn new(url: String, timeout: Duration, retries: u32) -> Self {
        HttpErp {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("a plain HTTP client builds"),
            url,
            retries,
            backoff: Duration::from_millis(200),
        }
    }

    async fn attempt(&self, order: &PendingOrder) -> Result<String, (bool, String)> {
        let body = json!({
            "pendingOrderId": order.id,
            "userId": order.user_id,
            "payload": order.payload,
        });
        let res = self
            .client
            .post(&self.url)
            .header("Idempotency-Key", &order.id)
            .json(&body)
            .send()
            .await
            .map_err(|e| (true, e.to_string()))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| (true, e.to_string()))?;
        if status.is_success() {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|_| (true, format!("answer is not JSON: {}", short(&text))))?;
            return match &value["orderNumber"] {
                serde_json::Value::String(s) if !s.is_empty() => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                _ => Err((true, format!("answer has no orderNumber: {}", short(&text)))),
            };
        }
        let retry = status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429;
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v["error"]["message"]
                    .as_str()
                    .or(v["error"].as_str())
                    .or(v["message"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| short(&text));
        Err((retry, format!("HTTP {}: {message}", status.as_u16())))
    }
}

fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

impl ErpConnector for HttpErp {
    fn submit<'a>(&'a self, order: &'a PendingOrder) -> ErpFuture<'a> {
        Box::pin(async move {
            let mut delay = self.backoff;
            let mut last = String::new();
            for attempt in 0..=self.retries {
                if attempt > 0 {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                match self.attempt(order).await {
                    Ok(number) => return Ok(number),
                    Err((false, message)) => return Err(ErpError::Rejected(message)),
                    Err((true, message)) => {
                        log::warn!(
                            "ERP attempt {} of {} for order {} failed: {message}",
                            attempt + 1,
                            self.retries + 1,
                            order.id
                        );
                        last = message;
                    }
                }
            }
            Err(ErpError::Unavailable(format!(
                "{last} (after {} attempts)",
                self.retries + 1
            )))
        })
    }
}

/// Numbers orders locally: `ORD-2026-000042`, from a per-year counter kept
/// in the database.
pub struct LocalNumbering {
    db: Db,
}

impl LocalNumbering {
    pub fn new(db: Db) -> Self {
        LocalNumbering { db }
    }

    async fn next(&self, year: i32) -> Result<i64, sea_orm::DbErr> {
        let name = format!("order-number:{year}");
        let txn = self.db.begin().await?;
        counters::Entity::insert(counters::ActiveModel {
            name: Set(name.clone()),
            value: Set(0),
        })
        .on_conflict_do_nothing_on([counters::Column::Name])
        .exec_without_returning(&txn)
        .await?;
        let rows = counters::Entity::update_many()
            .col_expr(
                counters::Column::Value,
                Expr::col(counters::Column::Value).add(1),
            )
            .filter(counters::Column::Name.eq(name.as_str()))
            .exec_with_returning(&txn)
            .await?;
        txn.commit().await?;
        rows.first()
            .map(|r| r.value)
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound(name))
    }
}

impl ErpConnector for LocalNumbering {
    fn submit<'a>(&'a self, _order: &'a PendingOrder) -> ErpFuture<'a> {
        Box::pin(async move {
            use chrono::Datelike;
            let year = chrono::Utc::now().year();
            let n = self
                .next(year)
                .await
                .map_err(|e| ErpError::Unavailable(format!("local numbering: {e}")))?;
            Ok(format!("ORD-{year}-{n:06}"))
        })
    }
}

/// The connector the settings ask for.
pub fn from_settings(
    db: &Db,
    url: Option<&str>,
    timeout: Duration,
    retries: u32,
) -> Arc<dyn ErpConnector> {
    match url {
        Some(url) => Arc::new(HttpErp::new(url.to_owned(), timeout, retries)),
        None => Arc::new(LocalNumbering::new(db.clone())),
    }
}
