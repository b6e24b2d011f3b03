//! The /ws session: resume with replay, and a clean close leaving at once.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use common::{Client, FrameExt, TestServer, raw_next, raw_ws};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_what_was_missed() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    // A participant on a bare socket: identify, join, then lose the connection.
    let mut ws = raw_ws(&server).await;
    let hello = raw_next(&mut ws).await.unwrap();
    assert_eq!(hello["op"], "hello");
    assert!(hello["d"]["heartbeat_interval_ms"].as_u64().unwrap() > 0);
    ws.send(Message::text(
        json!({"op": "identify", "d": {"token": server.token("resume", "ann")}}).to_string(),
    ))
    .await?;
    let ready = raw_next(&mut ws).await.unwrap();
    let session = ready["d"]["session_id"].as_str().unwrap().to_owned();
    ws.send(Message::text(
        json!({"op": "join", "id": 1, "d": {}}).to_string(),
    ))
    .await?;
    let joined = raw_next(&mut ws).await.unwrap();
    assert_eq!(joined["op"], "joined");
    let last_seq = joined["seq"].as_u64().unwrap();
    drop(ws); // no close frame: the session waits for a resume

    // Meanwhile two others join.
    let ben = Client::join(&server, &server.token("resume", "ben")).await?;
    let cat = Client::join(&server, &server.token("resume", "cat")).await?;

    let mut ws = raw_ws(&server).await;
    let _hello = raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "resume", "d": {"session_id": session, "seq": last_seq}}).to_string(),
    ))
    .await?;
    let mut seen = Vec::new();
    let mut seqs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen
        .iter()
        .filter(|o: &&String| *o == "participant_joined")
        .count()
        < 2
        || !seen.iter().any(|o| o == "resumed")
    {
        assert!(Instant::now() < deadline, "replay incomplete: {seen:?}");
        let f = raw_next(&mut ws).await.unwrap();
        if f["op"] != "resumed" && f["op"] != "offer" {
            seqs.push(f["seq"].as_u64().unwrap());
        }
        if f["op"] == "participant_joined" {
            seen.push(
                f["d"]["participant"]["identity"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        seen.push(f["op"].as_str().unwrap().to_owned());
    }
    assert!(seen.contains(&"resumed".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"ben".to_owned()) && seen.contains(&"cat".to_owned()),
        "{seen:?}"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] > w[0]),
        "replay out of order: {seqs:?}"
    );
    assert!(seqs.iter().all(|s| *s > last_seq));

    // A session id nobody knows: told to identify again.
    let mut ws2 = raw_ws(&server).await;
    let _hello = raw_next(&mut ws2).await;
    ws2.send(Message::text(
        json!({"op": "resume", "d": {"session_id": "nope", "seq": 0}}).to_string(),
    ))
    .await?;
    assert_eq!(
        raw_next(&mut ws2).await.unwrap()["d"]["code"],
        "session_expired"
    );
    drop((ben, cat));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_socket_leaves_within_two_seconds() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut stay = Client::join(&server, &server.token("close", "stay")).await?;
    let mut ws = raw_ws(&server).await;
    let _hello = raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "identify", "d": {"token": server.token("close", "go")}}).to_string(),
    ))
    .await?;
    raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "join", "id": 1, "d": {}}).to_string(),
    ))
    .await?;
    raw_next(&mut ws).await;
    let j = stay.wait_event("participant_joined").await?;
    assert_eq!(j.to_json()["d"]["participant"]["identity"], "go");

    let t0 = Instant::now();
    ws.close(None).await?; // what a browser does when the tab closes
    let left = stay.wait_event("participant_left").await?;
    assert_eq!(left.to_json()["d"]["identity"], "go");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_clients_and_closes() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut ws = raw_ws(&server).await;
    let _hello = raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "identify", "d": {"token": server.token("drain", "dora")}}).to_string(),
    ))
    .await?;
    raw_next(&mut ws).await;
    ws.send(Message::text(
        json!({"op": "join", "id": 1, "d": {}}).to_string(),
    ))
    .await?;
    assert_eq!(raw_next(&mut ws).await.unwrap()["op"], "joined");
    let stopping = tokio::spawn(server.stop());
    let mut ops = Vec::new();
    while let Some(f) = raw_next(&mut ws).await {
        ops.push(f["op"].as_str().unwrap_or_default().to_owned());
    }
    // The socket closed after the notice.
    assert!(ops.contains(&"shutdown".to_owned()), "{ops:?}");
    tokio::time::timeout(Duration::from_secs(15), stopping).await??;
    Ok(())
}

/// Identifies with `token` and joins on a bare socket; the socket and the joined reply.
async fn bare_join(
    server: &TestServer,
    token: String,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    serde_json::Value,
) {
    let mut ws = raw_ws(server).await;
    let _hello = raw_next(&mut ws).await.unwrap();
    let send = |v: serde_json::Value| Message::text(v.to_string());
    ws.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await
        .unwrap();
    let ready = raw_next(&mut ws).await.unwrap();
    assert_eq!(ready["op"], "ready", "{ready}");
    ws.send(send(json!({"op": "join", "id": 1, "d": {}})))
        .await
        .unwrap();
    let joined = raw_next(&mut ws).await.unwrap();
    assert_eq!(joined["op"], "joined", "{joined}");
    (ws, joined)
}

/// The next frame with this op, skipping others.
async fn next_op(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    op: &str,
) -> serde_json::Value {
    loop {
        let f = raw_next(ws).await.unwrap_or_else(|| panic!("no {op}"));
        if f["op"] == op {
            return f;
        }
    }
}

/// A second session of the same identity replaces the first, even in a full room: the
/// first is told `replaced`, the others see it leave and come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_session_of_an_identity_replaces_the_first() {
    let server = TestServer::start().await;
    let token = |who: &str| {
        server.token_with("swap", who, |c| {
            c.caps = Some(parlor_proto::RoomCaps {
                max_participants: Some(2),
                ..Default::default()
            })
        })
    };
    let (mut ann1, _) = bare_join(&server, token("ann")).await;
    let (mut ben, _) = bare_join(&server, token("ben")).await;
    next_op(&mut ann1, "participant_joined").await;
    let (_ann2, joined) = bare_join(&server, token("ann")).await;
    let others: Vec<&str> = joined["d"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert_eq!(others, ["ben"]);
    let err = next_op(&mut ann1, "error").await;
    assert_eq!(err["d"]["code"], "replaced");
    let left = next_op(&mut ben, "participant_left").await;
    assert_eq!(
        (left["d"]["identity"].as_str(), left["d"]["reason"].as_str()),
        (Some("ann"), Some("replaced"))
    );
    let back = next_op(&mut ben, "participant_joined").await;
    assert_eq!(back["d"]["participant"]["identity"], "ann");
    server.stop().await;
}

/// Glare across a slow event path (`docs/protocol.md` §6.5): the server offer made when
/// Xia joined is still on its way to signaling (room events here arrive 300 ms late)
/// when her own offer reaches the SFU and rolls it back. The rolled-back offer must reach
/// her before the answer to her offer, and only the fresh offer after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_offer_rolled_back_by_the_clients_offer_never_follows_the_answer()
-> anyhow::Result<()> {
    use common::{Bare, make_track};
    use webrtc::media_stream::track_local::TrackLocal;

    let server = TestServer::start_slow_events(Duration::from_millis(300)).await;
    let mut yan = Client::join(&server, &server.token("glare", "yan")).await?;
    yan.publish(&["microphone"]).await?;

    let mut ws = raw_ws(&server).await;
    assert_eq!(raw_next(&mut ws).await.unwrap()["op"], "hello");
    let token = server.token("glare", "xia");
    let send = |v: serde_json::Value| Message::text(v.to_string());
    ws.send(send(json!({"op": "identify", "d": {"token": token}})))
        .await?;
    assert_eq!(raw_next(&mut ws).await.unwrap()["op"], "ready");
    ws.send(send(json!({"op": "join", "id": 1, "d": {}})))
        .await?;
    assert_eq!(raw_next(&mut ws).await.unwrap()["op"], "joined");
    // The SFU makes its offer of Yan's track right after the join, in the same turn of
    // its loop unless a busy machine delays that turn: give it 100 ms, well inside the
    // 300 ms the offer then spends on its way. Then an offer to publish her microphone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pc = Bare::new().await?;
    let track: std::sync::Arc<dyn TrackLocal> = make_track("xia", "microphone");
    pc.pc.add_track(track).await?;
    let sdp = pc.offer().await?;
    let mid = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap()
        .trim()
        .to_owned();
    ws.send(send(json!({"op": "offer", "id": 2, "d": {
        "sdp": sdp, "tracks": [{"mid": mid, "source": "microphone"}]
    }})))
    .await?;

    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Ok(Some(f)) = tokio::time::timeout(deadline - Instant::now(), raw_next(&mut ws)).await
    {
        frames.push(f);
    }
    let ops: Vec<String> = frames
        .iter()
        .map(|f| match f["op"].as_str().unwrap() {
            "offer" => format!("offer {}", f["d"]["offer_id"]),
            op => op.to_owned(),
        })
        .collect();
    let answer = frames
        .iter()
        .position(|f| f["id"] == 2)
        .unwrap_or_else(|| panic!("no reply to the offer: {ops:?}"));
    assert_eq!(frames[answer]["op"], "answer", "{ops:?}");
    let offers = |fs: &[serde_json::Value]| -> Vec<u64> {
        fs.iter()
            .filter(|f| f["op"] == "offer")
            .map(|f| f["d"]["offer_id"].as_u64().unwrap())
            .collect()
    };
    let (before, after) = (offers(&frames[..answer]), offers(&frames[answer + 1..]));
    assert_eq!(
        before.len(),
        1,
        "the rolled-back offer precedes the answer: {ops:?}"
    );
    assert_eq!(after.len(), 1, "only the fresh offer follows it: {ops:?}");
    assert!(after[0] > before[0], "{ops:?}");
    server.stop().await;
    Ok(())
}
