//! The room's own rules, driven through its messages with a real database
//! (in-memory SQLite, migrated) and queues that stand in for sockets.

use std::sync::Mutex;

use serde_json::value::RawValue;

use super::{order::GAP_WAIT, *};
use crate::{
    core::events::Event,
    socket::queue::{self, Frame},
};

async fn config() -> RoomConfig {
    let db = Db::memory().await;
    RoomConfig {
        db,
        epoch: Arc::from("test-epoch"),
        buffer_events: 100,
        buffer_ttl: Duration::from_secs(300),
        retention: Duration::from_secs(3600),
        heartbeat_secs: 30,
        max_pending: 100,
        max_replay: 1000,
    }
}

/// Records the orders a room gives a session.
struct Ctl(Arc<Mutex<Vec<SessionCtl>>>);

impl Actor for Ctl {
    type Context = Context<Self>;
}

impl Handler<SessionCtl> for Ctl {
    type Result = ();
    fn handle(&mut self, msg: SessionCtl, _: &mut Self::Context) {
        self.0.lock().unwrap().push(msg);
    }
}

struct Member {
    frames: flume::Receiver<Frame>,
    orders: Arc<Mutex<Vec<SessionCtl>>>,
}

impl Member {
    /// Every frame queued so far (waiting up to `wait` for the first).
    async fn read(&mut self, wait: Duration) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        if let Ok(Ok(frame)) = tokio::time::timeout(wait, self.frames.recv_async()).await {
            out.extend(frame.texts());
        }
        while let Ok(frame) = self.frames.try_recv() {
            out.extend(frame.texts());
        }
        out.iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }
}

async fn join(room: &Addr<Room>, id: &str) -> Member {
    let (queue, frames) = queue::detached(64);
    let orders = Arc::new(Mutex::new(Vec::new()));
    let ctl = Ctl(orders.clone()).start().recipient();
    let (done, answer) = oneshot::channel();
    room.do_send(Join {
        conn_id: ConnId::from(id),
        queue,
        ctl,
        mode: JoinMode::Realtime {
            user_id: "u".into(),
            device_id: None,
            from: ResumeFrom::Now,
        },
        done,
    });
    answer.await.unwrap().unwrap();
    let mut member = Member { frames, orders };
    let hello = member.read(Duration::from_secs(1)).await;
    assert_eq!(hello[0]["type"], "CONNECTED");
    member
}

fn event(seq: Option<u64>, kind: &str) -> SharedEvent {
    let payload = RawValue::from_string("{}".into()).unwrap();
    Event::new(
        RoomKey::User("u".into()),
        seq,
        kind.into(),
        &payload,
        None,
        None,
        wire::now_ms(),
    )
}

fn deliver(room: &Addr<Room>, events: Vec<SharedEvent>) {
    room.do_send(Deliver {
        events,
        exclude: None,
    });
}

fn kinds(frames: &[serde_json::Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| f["type"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_transient_event_never_overtakes_a_held_buffered_one() {
    let room = Room::new(RoomKey::User("u".into()), config().await).start();
    let mut member = join(&room, "c1").await;
    // Seq 2 commits first and waits for seq 1; a progress event follows it.
    deliver(&room, vec![event(Some(2), "SECOND")]);
    deliver(&room, vec![event(None, "JOB_PROGRESS")]);
    deliver(&room, vec![event(Some(1), "FIRST")]);
    let mut got = member.read(Duration::from_secs(1)).await;
    got.extend(member.read(Duration::from_millis(100)).await);
    assert_eq!(kinds(&got), ["FIRST", "SECOND", "JOB_PROGRESS"]);
}

#[actix_web::test]
async fn a_seq_missing_from_the_log_resets_the_room_instead_of_skipping_it() {
    let room = Room::new(RoomKey::User("u".into()), config().await).start();
    let mut member = join(&room, "c1").await;
    // Seq 2 arrives; seq 1 never does and is not in the log either.
    deliver(&room, vec![event(Some(2), "SECOND")]);
    tokio::time::sleep(GAP_WAIT + Duration::from_millis(500)).await;
    let got = member.read(Duration::from_millis(100)).await;
    assert!(
        got.is_empty(),
        "nothing after the hole is delivered: {got:?}"
    );
    let orders = member.orders.lock().unwrap();
    assert!(
        matches!(orders.as_slice(), [SessionCtl::Close { code, .. }] if *code == wire::close::GOING_AWAY),
        "the member is told to reconnect and resync: {orders:?}"
    );
}

#[actix_web::test]
async fn a_room_that_stops_closes_its_members() {
    let room = Room::new(RoomKey::User("u".into()), config().await).start();
    let member = join(&room, "c1").await;
    room.do_send(StopRoom);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let orders = member.orders.lock().unwrap();
    assert!(
        matches!(orders.as_slice(), [SessionCtl::Close { .. }]),
        "no member stays attached to a stopped room: {orders:?}"
    );
}
