use sea_orm::ConnectionTrait;
use serde_json::value::RawValue;

use super::*;
use crate::{
    hub::{room::RoomConfig, Hub},
    store::{
        drafts::Created,
        pending_orders::{self, OrderInput},
    },
    writers::erp::LocalNumbering,
};

/// A built-in job whose start fails for a passing reason (here the
/// database refuses writes for a moment) is retried, not left `queued`.
#[actix_web::test]
async fn a_start_that_fails_for_a_moment_is_retried() {
    let db = Db::memory().await;
    let config = RoomConfig {
        db: db.clone(),
        epoch: Arc::from("e"),
        buffer_events: 10,
        buffer_ttl: Duration::from_secs(60),
        retention: Duration::from_secs(3600),
        heartbeat_secs: 30,
        max_pending: 10,
        max_replay: 100,
    };
    let bus = Bus::new(Hub::start(config, &[]), &db, 0);
    let order = pending_orders::Create {
        user_id: "u".into(),
        input: OrderInput {
            id: None,
            payload: Some(RawValue::from_string("{}".into()).unwrap()),
            status: None,
            order_number: None,
            job_id: None,
        },
        origin: None,
    };
    let (created, _) = command::execute(&db, order).await.unwrap();
    let order_id = match created {
        Created::New(o) | Created::Existing(o) => o.id,
    };
    let job = job_domain::Create {
        user_id: "u".into(),
        id: uuid::Uuid::new_v4().to_string(),
        kind: job_domain::SUBMIT_PENDING_ORDERS.into(),
        params: RawValue::from_string(format!(r#"{{"orderIds":["{order_id}"]}}"#)).unwrap(),
        node: None,
    };
    let ((job, _), _) = command::execute(&db, job).await.unwrap();
    // Writes fail from now on, so the start fails...
    db.write
        .execute_unprepared("PRAGMA query_only = ON")
        .await
        .unwrap();
    let erp: Arc<dyn ErpConnector> = Arc::new(LocalNumbering::new(db.clone()));
    let supervisor = JobSupervisor::new(db.clone(), bus, erp, 1).start();
    supervisor.do_send(Resume(vec![("u".into(), job.id.clone())]));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = |db: Db, id: String| async move {
        job_domain::find(&db.read, &id, None).await.unwrap().status
    };
    assert_eq!(status(db.clone(), job.id.clone()).await, "queued");
    // ...until the database takes writes again.
    db.write
        .execute_unprepared("PRAGMA query_only = OFF")
        .await
        .unwrap();
    let mut last = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        last = status(db.clone(), job.id.clone()).await;
        if last == "completed" {
            break;
        }
    }
    assert_eq!(last, "completed", "the start was retried and the job ran");
}
