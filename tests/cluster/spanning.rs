//! Rooms that span SFU nodes: regions, pipes, a stage over several nodes, caps across them.

use super::*;

/// A room that spans two regions, capped at 4: twelve joins at once, half through each
/// region's signaling node and so onto each region's SFU node, admit exactly 4. The
/// seats are taken in Redis, across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_holds_across_the_nodes_of_a_room_that_spans_regions() {
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let _west = sfu_in(&cluster, "sfu-cw", "127.0.0.47", "west");
    let _east = sfu_in(&cluster, "sfu-ce", "127.0.0.48", "east");
    let west = signaling_in(&cluster, "sig-cw", "127.0.0.49", "west");
    let east = signaling_in(&cluster, "sig-ce", "127.0.0.50", "east");
    wait_nodes(&reg, &["sfu-ce", "sfu-cw"]).await;
    let caps = RoomCaps {
        max_participants: Some(4),
        ..RoomCaps::default()
    };
    // The room is placed west first, so that east joins go to the east node.
    assert_eq!(
        raw_join_addr(west.http.unwrap(), &token("spancap", "first", Some(caps)))
            .await
            .0,
        "joined"
    );
    let (joined, full, outcomes) = join_race("spancap", caps, 12, [&west, &east]).await;
    assert_eq!((joined, full), (3, 9), "{outcomes:?}");
    assert_eq!(
        reg.edge("spancap", "east").await.unwrap().as_deref(),
        Some("sfu-ce"),
        "the room spans both regions"
    );
}

/// The median and 95th percentile of how much later each audio packet reached `far`
/// than `near`, in microseconds (negative: earlier), matched by the frame number the test
/// publisher writes in it.
fn added_latency(near: &common::Received, far: &common::Received) -> (i64, i64) {
    let first: std::collections::HashMap<u64, Instant> = near.stamps.iter().copied().collect();
    let mut d: Vec<i64> = far
        .stamps
        .iter()
        .filter_map(|(n, t)| {
            let s = first.get(n)?;
            Some(if t >= s {
                t.duration_since(*s).as_micros() as i64
            } else {
                -(s.duration_since(*t).as_micros() as i64)
            })
        })
        .collect();
    assert!(d.len() > 50, "only {} packets matched", d.len());
    d.sort_unstable();
    (d[d.len() / 2], d[d.len() * 95 / 100])
}

/// A room spans two SFU nodes of two regions. Alice publishes through a west signaling
/// node and is placed on the west SFU node; bob comes through an east signaling node and
/// is placed on the east SFU node, which pipes the room's media with the west node. Bob
/// receives alice's audio and video once relayed, with continuous sequence numbers, and
/// alice receives bob through the pipe the other way; each sees the other as a
/// participant. When bob leaves, the east node ends its pipes and leaves the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_two_regions_through_a_pipe() -> anyhow::Result<()> {
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let west = sfu_in(&cluster, "sfu-west", "127.0.0.36", "west");
    let east = sfu_in(&cluster, "sfu-east", "127.0.0.37", "east");
    let sig_west = signaling_in(&cluster, "sig-west", "127.0.0.38", "west");
    let sig_east = signaling_in(&cluster, "sig-east", "127.0.0.39", "east");
    wait_nodes(&reg, &["sfu-east", "sfu-west"]).await;

    let mut alice = Client::join_at(sig_west.http.unwrap(), &token("span", "alice", None)).await?;
    assert_eq!(reg.placement("span").await?.as_deref(), Some("sfu-west"));
    let r = alice.publish(&["microphone", "camera"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    let carol = Client::join_at(sig_west.http.unwrap(), &token("span", "carol", None)).await?;
    let mut bob = Client::join_at(sig_east.http.unwrap(), &token("span", "bob", None)).await?;
    assert_eq!(
        reg.edge("span", "east").await?.as_deref(),
        Some("sfu-east"),
        "bob's region has its own node for the room"
    );
    let enough = |t: &Table| {
        let alice: Vec<&common::Received> = t.values().filter(|r| r.owner == "alice").collect();
        alice.len() == 2 && alice.iter().all(|r| r.packets > 150)
    };
    carol
        .wait_media("carol, on alice's node, receives her", enough)
        .await?;
    bob.wait_media("bob, on the other node, receives alice", enough)
        .await?;
    // Connected where the regions say: alice and carol west, bob east.
    assert_eq!(gauge(&west, "parlor_sfu_participants").await, 2.0);
    assert_eq!(gauge(&east, "parlor_sfu_participants").await, 1.0);
    for (id, r) in bob.counts().iter().filter(|(_, r)| r.owner == "alice") {
        assert!(
            r.seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "track {id} reached bob with a gap or a repeat: {:?}",
            r.seqs
        );
    }
    let audio = |c: &Client| {
        c.counts()
            .into_values()
            .find(|r| r.owner == "alice" && !r.stamps.is_empty())
            .unwrap()
    };
    let (p50, p95) = added_latency(&audio(&carol), &audio(&bob));
    eprintln!(
        "cascading: the other node's subscriber got each packet {p50} µs later than one on the \
         publisher's node at the median, {p95} µs at p95"
    );

    // The other way: bob publishes on the east node; alice, on the west node, receives.
    let r = bob.publish(&["microphone"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    alice
        .wait_media("alice receives bob through the pipe back", |t| {
            packets_from(t, "bob") > 50
        })
        .await?;
    loop {
        let e = alice.wait_event("participant_joined").await?.to_json();
        if e["d"]["participant"]["identity"] == "bob" {
            break;
        }
    }

    // Carol leaves: bob, on the other node, hears it.
    let r = carol.request("leave", serde_json::json!({})).await?;
    assert_ne!(r.msg_op(), "error", "{}", r.to_json());
    let e = bob.wait_event("participant_left").await?.to_json();
    assert_eq!(e["d"]["identity"], "carol", "{e}");

    // The west node dies without ending its pipes: the east node notices it gone from
    // the registry, and bob sees alice leave.
    let killed = Instant::now();
    drop(west);
    let e = bob.wait_event("participant_left").await?.to_json();
    assert_eq!(e["d"]["identity"], "alice", "{e}");
    eprintln!(
        "cascading: the far node dropped the dead node's participants after {:?}",
        killed.elapsed()
    );

    // Bob leaves: the east node leaves the room.
    let r = bob.request("leave", serde_json::json!({})).await?;
    assert_ne!(r.msg_op(), "error", "{}", r.to_json());
    let deadline = Instant::now() + Duration::from_secs(5);
    while reg.edge("span", "east").await?.is_some() {
        assert!(Instant::now() < deadline, "the east node keeps the room");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((alice, carol, east));
    Ok(())
}

/// A stage: one speaker and six listeners in a room, on SFU nodes meant to hold three
/// participants each. The room spreads over the region's three nodes as they fill, none
/// above its capacity, and every listener hears the speaker, on whichever node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_spreads_its_listeners_over_the_nodes_of_a_region() -> anyhow::Result<()> {
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let ids = ["sfu-s1", "sfu-s2", "sfu-s3"];
    let _nodes: Vec<Node> = ids
        .iter()
        .zip(["127.0.0.40", "127.0.0.41", "127.0.0.42"])
        .map(|(id, ip)| sfu(&cluster, id, ip, 3))
        .collect();
    let sig = signaling(&cluster, "sig-s", "127.0.0.43");
    wait_nodes(&reg, &ids).await;
    let total = || async {
        reg.nodes()
            .await
            .unwrap()
            .iter()
            .map(|n| n.load.participants)
            .sum::<u32>()
    };

    let mut speaker = Client::join_at(sig.http.unwrap(), &token("stage", "speaker", None)).await?;
    let r = speaker.publish(&["microphone"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    let mut listeners = Vec::new();
    for i in 0..6u32 {
        let t = token("stage", &format!("listener-{i}"), None);
        listeners.push(Client::join_at(sig.http.unwrap(), &t).await?);
        // Placement reads the load the nodes announce: let it count this one.
        let deadline = Instant::now() + Duration::from_secs(5);
        while total().await != i + 2 {
            assert!(
                Instant::now() < deadline,
                "the registry never counted listener {i}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for l in &listeners {
        l.wait_media("a listener hears the speaker", |t| {
            packets_from(t, "speaker") > 30
        })
        .await?;
    }
    let mut loads: Vec<u32> = reg
        .nodes()
        .await?
        .iter()
        .map(|n| n.load.participants)
        .collect();
    loads.sort_unstable();
    assert_eq!(
        loads,
        [1, 3, 3],
        "seven participants over three nodes of three"
    );
    Ok(())
}
