//! Rooms end to end: a real server on port 0, webrtc-rs clients over real UDP.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use common::{Client, FrameExt, TestServer, packets_of, settled, sleep_ms};

type Table = std::collections::HashMap<String, common::Received>;

fn video_from(t: &Table, owner: &str) -> u64 {
    t.iter()
        .filter(|(_, r)| {
            r.owner == owner
                && r.kind == Some(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video)
        })
        .map(|(_, r)| r.packets)
        .sum()
}

fn audio_from(t: &Table, owner: &str) -> u64 {
    t.iter()
        .filter(|(_, r)| {
            r.owner == owner
                && r.kind == Some(rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio)
        })
        .map(|(_, r)| r.packets)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_each_receive_both_others() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let names = ["alice", "bob", "carol"];
    let mut clients = Vec::new();
    for n in names {
        let mut c = Client::join(&server, &server.token("room-3", n)).await?;
        let r = c.publish(&["microphone", "camera"]).await?;
        assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
        clients.push(c);
    }
    for c in &clients {
        for other in names.iter().filter(|o| **o != c.identity) {
            c.wait_media(&format!("{} hears and sees {other}", c.identity), |t| {
                audio_from(t, other) > 10 && video_from(t, other) > 10
            })
            .await?;
        }
        // Nothing of its own comes back.
        assert_eq!(video_from(&c.counts(), &c.identity), 0);
    }
    server
        .wait_metric("parlor_sfu_rtp_forwarded_total", |v| v > 0.0)
        .await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_is_its_own_labelled_track() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut alice = Client::join(&server, &server.token("screen", "alice")).await?;
    alice.publish(&["microphone", "camera"]).await?;
    let mut bob = Client::join(&server, &server.token("screen", "bob")).await?;
    bob.publish(&["microphone"]).await?;

    let r = alice.publish(&["screen", "screen_audio"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    let screen_id = alice.published.lock().unwrap()["screen"].clone();
    // Bob is told what the new track is, labelled as a screen...
    let deadline = std::time::Instant::now() + common::WAIT;
    let mut labels = Vec::new();
    while labels.len() < 2 && std::time::Instant::now() < deadline {
        let ev = bob.wait_event("track_published").await?.to_json();
        labels.push((
            ev["d"]["track"]["track_id"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            ev["d"]["track"]["source"].as_str().unwrap_or("").to_owned(),
            ev["d"]["track"]["participant"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        ));
    }
    assert!(
        labels.contains(&(screen_id.clone(), "screen".into(), "alice".into())),
        "{labels:?}"
    );
    assert!(labels.iter().any(|l| l.1 == "screen_audio"), "{labels:?}");
    // ...and receives it, apart from the camera.
    let cam_id = alice.published.lock().unwrap()["camera"].clone();
    assert_ne!(cam_id, screen_id);
    bob.wait_media("bob receives alice's screen", |t| {
        t.get(&screen_id).is_some_and(|r| r.packets > 10)
            && t.get(&cam_id).is_some_and(|r| r.packets > 10)
    })
    .await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_pause_stop_packets_to_that_subscriber_only() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut alice = Client::join(&server, &server.token("unsub", "alice")).await?;
    alice.publish(&["microphone", "camera"]).await?;
    let bob = Client::join(&server, &server.token("unsub", "bob")).await?;
    let carol = Client::join(&server, &server.token("unsub", "carol")).await?;
    let cam = alice.published.lock().unwrap()["camera"].clone();
    let mic = alice.published.lock().unwrap()["microphone"].clone();
    for c in [&bob, &carol] {
        c.wait_media("receives alice", |t| {
            t.get(&cam).is_some_and(|r| r.packets > 10)
                && t.get(&mic).is_some_and(|r| r.packets > 10)
        })
        .await?;
    }

    // Unsubscribe: bob's camera packets stop; carol's continue; bob still hears alice.
    let r = bob
        .request("unsubscribe", serde_json::json!({"track_id": cam}))
        .await?;
    assert_eq!(r.msg_op(), "ok", "{}", r.to_json());
    let bob_before = settled(&bob, &cam).await;
    let (carol_before, bob_mic) = (packets_of(&carol, &cam), packets_of(&bob, &mic));
    sleep_ms(1500).await;
    assert_eq!(
        packets_of(&bob, &cam),
        bob_before,
        "bob still gets the camera"
    );
    assert!(
        packets_of(&carol, &cam) > carol_before + 20,
        "carol lost the camera"
    );
    assert!(
        packets_of(&bob, &mic) > bob_mic + 20,
        "bob lost the microphone"
    );

    // Pause and resume the microphone for carol only.
    let r = carol
        .request(
            "pause",
            serde_json::json!({"track_id": mic, "paused": true}),
        )
        .await?;
    assert_eq!(r.msg_op(), "ok");
    let carol_mic = settled(&carol, &mic).await;
    let bob_mic = packets_of(&bob, &mic);
    sleep_ms(1000).await;
    assert_eq!(
        packets_of(&carol, &mic),
        carol_mic,
        "paused track still flows"
    );
    assert!(packets_of(&bob, &mic) > bob_mic + 20);
    carol
        .request(
            "pause",
            serde_json::json!({"track_id": mic, "paused": false}),
        )
        .await?;
    carol
        .wait_media("carol's microphone resumes", |t| {
            t.get(&mic).is_some_and(|r| r.packets > carol_mic + 20)
        })
        .await?;
    // Sequence numbers stay continuous across the pause.
    let seqs = carol.counts()[&mic].seqs.clone();
    let gaps = seqs
        .windows(2)
        .filter(|w| w[1] != w[0].wrapping_add(1))
        .count();
    assert!(gaps <= 2, "sequence gaps after pause/resume: {gaps}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_tells_the_room_and_ends_its_tracks() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut alice = Client::join(&server, &server.token("leave", "alice")).await?;
    alice.publish(&["microphone", "camera"]).await?;
    let mut bob = Client::join(&server, &server.token("leave", "bob")).await?;
    let cam = alice.published.lock().unwrap()["camera"].clone();
    bob.wait_media("bob sees alice", |t| {
        t.get(&cam).is_some_and(|r| r.packets > 10)
    })
    .await?;
    assert!(bob.has_live_track(&cam).await);

    let r = alice.request("leave", serde_json::json!({})).await?;
    assert_eq!(r.msg_op(), "left");
    let left = bob.wait_event("participant_left").await?.to_json();
    assert_eq!(left["d"]["identity"], "alice");
    let after = settled(&bob, &cam).await;
    sleep_ms(1000).await;
    assert_eq!(packets_of(&bob, &cam), after, "packets after leaving");
    // The server stops the m-lines that carried alice's tracks (the browser ends them).
    let deadline = std::time::Instant::now() + common::WAIT;
    while bob.has_live_track(&cam).await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice's camera m-line still live"
        );
        sleep_ms(100).await;
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_race_admits_exactly_the_cap() -> anyhow::Result<()> {
    let server = TestServer::start_with(parlor_sfu::CapsConfig {
        max_participants: 10,
        ..Default::default()
    })
    .await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let token = server.token("race", &format!("racer{i}"));
        let http = server.http;
        tasks.push(tokio::spawn(async move {
            common::raw_join_addr(http, &token).await
        }));
    }
    let mut joined = 0;
    let mut full = 0;
    for t in tasks {
        let (op, code) = t.await?;
        match (op.as_str(), code.as_str()) {
            ("joined", _) => joined += 1,
            ("error", "room_full") => full += 1,
            other => panic!("unexpected reply {other:?}"),
        }
    }
    assert_eq!((joined, full), (10, 40));
    server.stop().await;
    Ok(())
}

/// A simulcast subscriber gets the top layer once its bandwidth estimate allows it, even
/// when that layer (2.5 Mbit/s here) is above the 1.5 Mbit/s the SFU's estimate starts
/// at: the SFU tells the estimator what the subscriber asked for, so it probes up to it.
/// Without that the estimate settles near 2 Mbit/s and the subscriber stays on the middle
/// layer for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulcast_subscriber_climbs_to_a_top_layer_above_its_starting_estimate()
-> anyhow::Result<()> {
    let server = TestServer::start().await;
    let mut ann = Client::join(&server, &server.token("climb", "ann")).await?;
    let r = ann.publish_simulcast_camera().await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    // Bob arrives once the SFU has measured each layer's rate (over one-second windows),
    // so his estimate, not an unmeasured layer, decides where he starts.
    sleep_ms(2500).await;
    let bob = Client::join(&server, &server.token("climb", "bob")).await?;
    let layers = |t: &Table| {
        t.values()
            .filter(|r| r.owner == "ann")
            .fold([0u64; 3], |a, r| [0, 1, 2].map(|i| a[i] + r.layers[i]))
    };
    bob.wait_media("bob receives ann's camera", |t| {
        layers(t).iter().sum::<u64>() > 50
    })
    .await?;
    // From here on, the top layer: 250 packets a second of it.
    let before = layers(&bob.counts())[2];
    bob.wait_media("bob climbs to ann's top layer", |t| {
        layers(t)[2] > before + 500
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: layers received {:?}", layers(&bob.counts())))?;
    server.stop().await;
    Ok(())
}

/// A voice-only room (caps that allow no camera and no screen share) runs no bandwidth
/// estimation: the server offers no transport-wide sequence numbers there, so its
/// clients send no transport-wide feedback, while a room that can carry video does.
/// Audio flows in both, and audio levels and the mid stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_only_room_negotiates_no_transport_wide_feedback() -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let voice = |c: &mut parlor_proto::Claims| {
        c.caps = Some(parlor_proto::RoomCaps {
            max_video_publishers: Some(0),
            max_screen_shares: Some(0),
            ..Default::default()
        });
    };
    for (room, voice_only) in [("stage", true), ("hangout", false)] {
        let token = |who: &str| {
            if voice_only {
                server.token_with(room, who, voice)
            } else {
                server.token(room, who)
            }
        };
        let mut speaker = Client::join(&server, &token("speaker")).await?;
        let answer = speaker.publish(&["microphone"]).await?;
        assert_eq!(answer.msg_op(), "answer", "{}", answer.to_json());
        let listener = Client::join(&server, &token("listener")).await?;
        listener
            .wait_media(&format!("{room}: the listener hears the speaker"), |t| {
                audio_from(t, "speaker") > 10
            })
            .await?;
        // The server's offer to the listener: its extensions are the server's choice.
        let sdp = listener.remote_sdp().await;
        assert_eq!(
            sdp.contains("transport-wide-cc"),
            !voice_only,
            "{room}: {sdp}"
        );
        assert!(sdp.contains("ssrc-audio-level"), "{room}: {sdp}");
        assert!(sdp.contains("sdes:mid"), "{room}: {sdp}");
        speaker.close().await;
        listener.close().await;
    }
    server.stop().await;
    Ok(())
}
