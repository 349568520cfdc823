//! One commit group's transaction: `Idempotency-Key`s looked up and
//! claimed, every user's events appended, the keys' answers stored, then
//! the commit. The publisher actor (the parent module) forms the groups.

use std::collections::BTreeMap;

use super::{IdempotencyKey, PublishError, Published, Seqs, Targets, Waiting};
use crate::{
    core::{
        events::{Record, RoomKey},
        wire,
    },
    store::{
        db::Db,
        event_log::{self, NewEvent},
    },
};

/// What a request of a batch turns out to be once its key is looked up.
enum Fate {
    /// Publish it.
    New,
    /// A repeat of an earlier request of this batch (index).
    SameAs(usize),
    /// A repeat of a stored publish: its answer.
    Stored(Seqs),
    /// The key came with another body.
    Reused,
}

/// Looks `key` up in the log's transaction (a row older than the TTL no
/// longer counts, and goes).
async fn stored_answer(
    txn: &sea_orm::DatabaseTransaction,
    key: &IdempotencyKey,
    now: i64,
) -> Result<Option<Fate>, sea_orm::DbErr> {
    use entity::idempotency_keys;
    use sea_orm::EntityTrait;
    let Some(row) = idempotency_keys::Entity::find_by_id(key.id.clone())
        .one(txn)
        .await?
    else {
        return Ok(None);
    };
    if row.created_at < now - key.ttl_ms {
        idempotency_keys::Entity::delete_by_id(row.key)
            .exec(txn)
            .await?;
        return Ok(None);
    }
    if row.request_hash != key.request_hash {
        return Ok(Some(Fate::Reused));
    }
    // The stored body is the answer as sent: `{"seqs": {...}}`.
    let body: serde_json::Value = serde_json::from_str(&row.response).unwrap_or_default();
    Ok(Some(Fate::Stored(
        serde_json::from_value(body["seqs"].clone()).unwrap_or_default(),
    )))
}

/// One transaction for the whole batch; answers the events in commit order
/// and each request's answer. A request with an `Idempotency-Key` that was
/// answered before gets that answer and publishes nothing; a new key is
/// stored with its answer in the same transaction as its events.
pub(super) async fn commit_batch(
    db: &Db,
    batch: &[Waiting],
    all: Option<&[String]>,
) -> Result<(Vec<Record>, Vec<Result<Published, PublishError>>), sea_orm::DbErr> {
    if batch.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let txn = db.begin().await?;
    // Taken under the write lock; the log orders timestamps per stream.
    let now = wire::now_ms();
    let mut fates = Vec::with_capacity(batch.len());
    let mut first_of: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (i, waiting) in batch.iter().enumerate() {
        let fate = match &waiting.request.idempotency {
            None => Fate::New,
            Some(key) => match first_of.get(key.id.as_str()) {
                Some(&(j, hash)) if hash == key.request_hash => Fate::SameAs(j),
                Some(_) => Fate::Reused,
                None => match stored_answer(&txn, key, now).await? {
                    Some(fate) => fate,
                    None => {
                        first_of.insert(&key.id, (i, &key.request_hash));
                        Fate::New
                    }
                },
            },
        };
        fates.push(fate);
    }
    // Claim the new keys before writing anything, in key order (so two
    // nodes' groups claiming the same keys cannot deadlock). On PostgreSQL a
    // key another node's group is storing right now makes this insert wait
    // for that group's commit; then the key is theirs, and this request
    // gets their answer instead of publishing again.
    let mut claims: Vec<(&str, usize)> = first_of.iter().map(|(k, (i, _))| (*k, *i)).collect();
    claims.sort();
    for (_, i) in claims {
        let key = batch[i].request.idempotency.as_ref().expect("keyed");
        if !claim_key(&txn, key, now).await? {
            fates[i] = stored_answer(&txn, key, now).await?.unwrap_or(Fate::Reused);
        }
    }
    // Group by user, keeping request order within each user's stream.
    let mut per_user: BTreeMap<String, Vec<(usize, NewEvent)>> = BTreeMap::new();
    for (i, waiting) in batch.iter().enumerate() {
        if !matches!(fates[i], Fate::New) {
            continue;
        }
        let req = &waiting.request;
        let users = match &req.targets {
            Targets::Users(users) => users,
            Targets::All => all.expect("resolved for the batch"),
        };
        for user in users {
            per_user.entry(user.clone()).or_default().push((
                i,
                NewEvent {
                    kind: req.kind.clone(),
                    payload: req.payload.clone(),
                    origin: req.origin.clone(),
                    mutation_id: req.mutation_id.as_deref().map(str::to_owned),
                },
            ));
        }
    }
    // Every user's events in one upsert and one insert (per chunk).
    let mut owners: Vec<(String, Vec<usize>)> = Vec::with_capacity(per_user.len());
    let mut streams = BTreeMap::new();
    for (user, items) in per_user {
        let (mine, news): (Vec<usize>, Vec<NewEvent>) = items.into_iter().unzip();
        streams.insert(RoomKey::User(user.clone()), news);
        owners.push((user, mine));
    }
    let appended = event_log::append_many(&txn, streams, now, db.node).await?;
    let mut events = Vec::new();
    let mut seqs: Vec<Seqs> = vec![Seqs::new(); batch.len()];
    for ((user, mine), stream) in owners.into_iter().zip(appended) {
        for (owner, event) in mine.into_iter().zip(&stream) {
            seqs[owner].insert(user.clone(), event.seq);
        }
        events.extend(stream);
    }
    for (i, waiting) in batch.iter().enumerate() {
        if let (Fate::New, Some(key)) = (&fates[i], &waiting.request.idempotency) {
            use entity::idempotency_keys;
            use sea_orm::{sea_query::Expr, ColumnTrait, EntityTrait, QueryFilter};
            let body = serde_json::json!({ "seqs": seqs[i] });
            idempotency_keys::Entity::update_many()
                .col_expr(
                    idempotency_keys::Column::Response,
                    Expr::value(body.to_string()),
                )
                .col_expr(idempotency_keys::Column::Status, Expr::value(200))
                .filter(idempotency_keys::Column::Key.eq(key.id.as_str()))
                .exec(&txn)
                .await?;
        }
    }
    txn.commit().await?;
    let answer = |i: usize| match &fates[i] {
        Fate::New => Ok(Published {
            seqs: seqs[i].clone(),
            replayed: false,
        }),
        Fate::Stored(stored) => Ok(Published {
            seqs: stored.clone(),
            replayed: true,
        }),
        Fate::Reused | Fate::SameAs(_) => Err(PublishError::KeyReused),
    };
    let answers = (0..batch.len())
        .map(|i| match fates[i] {
            // The same answer as the first request with its key, whatever
            // that one turned out to be.
            Fate::SameAs(j) => answer(j).map(|first| Published {
                replayed: true,
                ..first
            }),
            _ => answer(i),
        })
        .collect();
    Ok((events, answers))
}

/// Takes `key` for this group (a row whose answer is filled in before the
/// commit); false when another group already holds it.
async fn claim_key(
    txn: &sea_orm::DatabaseTransaction,
    key: &IdempotencyKey,
    now: i64,
) -> Result<bool, sea_orm::DbErr> {
    use entity::idempotency_keys;
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let inserted = idempotency_keys::Entity::insert(idempotency_keys::ActiveModel {
        key: Set(key.id.clone()),
        request_hash: Set(key.request_hash.clone()),
        response: Set(String::new()),
        created_at: Set(now),
        status: Set(0),
    })
    .on_conflict_do_nothing_on([idempotency_keys::Column::Key])
    .exec_without_returning(txn)
    .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n == 1))
}
