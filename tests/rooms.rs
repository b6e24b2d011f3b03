//! Rooms end to end: a real server on port 0, webrtc-rs clients over real UDP.

mod common;

use common::{Client, FrameExt, TestServer};

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
    assert!(server.metric("parlor_sfu_rtp_forwarded_total").await > 0.0);
    server.stop().await;
    Ok(())
}
