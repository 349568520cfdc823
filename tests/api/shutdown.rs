//! SIGTERM: sockets closed with 1001, quick exit, nothing committed lost.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits_quickly() {
    let mut app = spawn_app().await;
    let (mut a, hello) = app.realtime_connected("alice", "").await;
    let epoch = hello["epoch"].as_str().unwrap().to_owned();
    let (mut b, _) = app.realtime_connected("bob", "").await;
    for _ in 0..3 {
        app.publish("alice", "A", json!({})).await;
    }
    for _ in 0..3 {
        a.next_json().await;
    }
    let reader = tokio::spawn(async move {
        let (ea, _) = a.until_closed(Duration::from_secs(15)).await;
        let (eb, _) = b.until_closed(Duration::from_secs(15)).await;
        (ea, eb)
    });
    let ((status, took), mut app) = tokio::task::spawn_blocking(move || (app.terminate(), app))
        .await
        .unwrap();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        app.log()
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let (ea, eb) = reader.await.unwrap();
    assert_eq!(ea.code(), Some(1001), "{ea:?}");
    assert_eq!(eb.code(), Some(1001), "{eb:?}");

    // The next process replays from the device's since.
    app.start().await;
    let (mut a, hello) = app
        .realtime_connected("alice", &format!("since=1&epoch={epoch}"))
        .await;
    assert_eq!(hello["lastSeq"], 3);
    assert_eq!(a.next_json().await["seq"], 2);
    assert_eq!(a.next_json().await["seq"], 3);
    assert_eq!(a.next_json().await["type"], "REPLAY_COMPLETE");
}
