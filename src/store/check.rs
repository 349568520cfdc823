//! `herald check`: what the database promises, verified row by row.
//!
//! - every stream's stored seqs are contiguous and end at `streams.last_seq`
//!   (retention prunes the oldest, so a stream may start above 1, never have
//!   a hole);
//! - timestamps strictly increase with seq, and `streams.last_ts` is the
//!   stream's latest;
//! - no event without its change: every draft, pending order and job an
//!   event names exists (a pending order deleted later is named by a later
//!   `PENDING_DELETED`).

use std::collections::{BTreeMap, BTreeSet};

use entity::{drafts, events, jobs, pending_orders, streams};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QueryOrder};

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub streams: usize,
    pub events: usize,
    pub problems: Vec<String>,
}

/// Reads the whole log once, stream by stream in seq order.
pub async fn check<C: ConnectionTrait>(db: &C) -> Result<Report, DbErr> {
    let mut report = Report::default();
    let heads: BTreeMap<String, streams::Model> = streams::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|s| (s.stream.clone(), s))
        .collect();
    report.streams = heads.len();
    let rows = events::Entity::find()
        .order_by_asc(events::Column::Stream)
        .order_by_asc(events::Column::Seq)
        .all(db)
        .await?;
    report.events = rows.len();
    let draft_ids: BTreeSet<String> = ids(drafts::Entity::find().all(db).await?, |d| d.id);
    let order_ids: BTreeSet<String> = ids(pending_orders::Entity::find().all(db).await?, |o| o.id);
    let job_ids: BTreeSet<String> = ids(jobs::Entity::find().all(db).await?, |j| j.id);
    let mut by_stream: BTreeMap<&str, Vec<&events::Model>> = BTreeMap::new();
    for row in &rows {
        by_stream.entry(row.stream.as_str()).or_default().push(row);
    }
    for (stream, list) in &by_stream {
        let Some(head) = heads.get(*stream) else {
            report.problems.push(format!(
                "{stream}: {} event(s) but no streams row",
                list.len()
            ));
            continue;
        };
        let first = list[0].seq;
        for pair in list.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                report.problems.push(format!(
                    "{stream}: seqs {}..{} are missing (a hole in the log)",
                    pair[0].seq + 1,
                    pair[1].seq - 1
                ));
            }
            if pair[1].created_at <= pair[0].created_at {
                report.problems.push(format!(
                    "{stream}: seq {} is not later than seq {} ({} <= {} ms)",
                    pair[1].seq, pair[0].seq, pair[1].created_at, pair[0].created_at
                ));
            }
        }
        let last = list[list.len() - 1];
        if last.seq != head.last_seq {
            report.problems.push(format!(
                "{stream}: the last stored seq is {}, the stream says {} (seqs {}..{} missing)",
                last.seq,
                head.last_seq,
                last.seq + 1,
                head.last_seq
            ));
        }
        if head.last_ts < last.created_at {
            report.problems.push(format!(
                "{stream}: last_ts {} is before its last event's time {}",
                head.last_ts, last.created_at
            ));
        }
        if first < 1 {
            report
                .problems
                .push(format!("{stream}: seq {first} is not a seq"));
        }
        check_changes(stream, list, &draft_ids, &order_ids, &job_ids, &mut report);
    }
    Ok(report)
}

fn ids<T>(rows: Vec<T>, id: impl Fn(T) -> String) -> BTreeSet<String> {
    rows.into_iter().map(id).collect()
}

fn check_changes(
    stream: &str,
    list: &[&events::Model],
    drafts: &BTreeSet<String>,
    orders: &BTreeSet<String>,
    jobs: &BTreeSet<String>,
    report: &mut Report,
) {
    let mut deleted_later: BTreeSet<String> = BTreeSet::new();
    for row in list.iter().rev() {
        let payload: serde_json::Value = match serde_json::from_str(&row.payload) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(format!(
                    "{stream}: seq {} has a payload that is not JSON: {e}",
                    row.seq
                ));
                continue;
            }
        };
        let missing = |what: &str, id: &str| {
            format!(
                "{stream}: seq {} ({}) names {what} {id}, which does not exist",
                row.seq, row.event_type
            )
        };
        match row.event_type.as_str() {
            "DRAFT_CREATED" | "DRAFT_UPDATED" | "DRAFT_DELETED" => {
                if let Some(id) = payload["draft"]["id"].as_str() {
                    if !drafts.contains(id) {
                        report.problems.push(missing("draft", id));
                    }
                }
            }
            "PENDING_DELETED" => {
                if let Some(id) = payload["order"]["id"].as_str() {
                    deleted_later.insert(id.to_owned());
                }
            }
            "PENDING_CREATED" | "PENDING_UPDATED" => {
                if let Some(id) = payload["order"]["id"].as_str() {
                    if !orders.contains(id) && !deleted_later.contains(id) {
                        report.problems.push(missing("pending order", id));
                    }
                }
            }
            "JOB_QUEUED" | "JOB_STARTED" | "JOB_COMPLETED" | "JOB_FAILED" => {
                if let Some(id) = payload["job"]["id"].as_str() {
                    if !jobs.contains(id) {
                        report.problems.push(missing("job", id));
                    }
                }
            }
            _ => {}
        }
    }
}
