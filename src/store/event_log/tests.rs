use super::*;
use crate::store::db::Db;

/// One upsert for many streams gives each the seqs and timestamps that
/// one `append` per stream would: contiguous after what it had, each
/// timestamp after the stream's last one even when the clock is behind.
#[actix_web::test]
async fn append_many_continues_every_stream() {
    let db = Db::memory().await;
    let (a, b, c) = (
        RoomKey::User("a".into()),
        RoomKey::User("b".into()),
        RoomKey::User("c".into()),
    );
    let ev = |i: i32| NewEvent::new("X", &i, None);
    let txn = db.begin().await.unwrap();
    // `a` has two events, its clock ahead of the next batch's `now`.
    append(&txn, &a, vec![ev(0), ev(1)], 5_000, None)
        .await
        .unwrap();
    // `b` has one, behind it.
    append(&txn, &b, vec![ev(0)], 10, None).await.unwrap();
    let batches = BTreeMap::from([
        (c.clone(), vec![ev(1)]),
        (a.clone(), vec![ev(2), ev(3), ev(4)]),
        (b.clone(), vec![ev(1), ev(2)]),
    ]);
    let out = append_many(&txn, batches, 1_000, Some(7)).await.unwrap();
    txn.commit().await.unwrap();
    let got: Vec<Vec<(RoomKey, Option<u64>, i64)>> = out
        .iter()
        .map(|s| {
            s.iter()
                .map(|e| (e.room.clone(), e.seq, e.created_at))
                .collect()
        })
        .collect();
    assert_eq!(
        got,
        vec![
            vec![
                (a.clone(), Some(3), 5_002),
                (a.clone(), Some(4), 5_003),
                (a.clone(), Some(5), 5_004)
            ],
            vec![(b.clone(), Some(2), 1_000), (b.clone(), Some(3), 1_001)],
            vec![(c.clone(), Some(1), 1_000)],
        ]
    );
    for (room, last) in [(&a, 5u64), (&b, 3), (&c, 1)] {
        assert_eq!(last_seq(&db.read, room).await.unwrap(), last);
        let stored = fetch_range(&db.read, room, 0, 100).await.unwrap();
        let seqs: Vec<_> = stored.iter().map(|e| e.seq.unwrap()).collect();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "{room:?}: contiguous");
        assert!(stored.windows(2).all(|w| w[0].created_at < w[1].created_at));
    }
}

/// A backlog goes in chunks of PRUNE_CHUNK rows, each its own statement,
/// and only rows older than the cut.
#[actix_web::test]
async fn pruning_deletes_a_backlog_in_chunks() {
    let db = Db::memory().await;
    let room = RoomKey::User("u".into());
    let batch: Vec<NewEvent> = (0..2500)
        .map(|i| NewEvent::new("OLD", &serde_json::json!({ "i": i }), None))
        .collect();
    let txn = db.begin().await.unwrap();
    append(&txn, &room, batch, 1_000, None).await.unwrap();
    append(
        &txn,
        &room,
        vec![NewEvent::new("NEW", &1, None)],
        1_000_000,
        None,
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(prune_chunk(&db.write, 500_000).await.unwrap(), PRUNE_CHUNK);
    assert_eq!(prune_chunk(&db.write, 500_000).await.unwrap(), 500);
    assert_eq!(prune_chunk(&db.write, 500_000).await.unwrap(), 0);
    let left = fetch_range(&db.read, &room, 0, 10_000).await.unwrap();
    assert_eq!(left.len(), 1, "the newer event stays");
    assert_eq!(left[0].kind, "NEW");
}
