//! An SFU node past what it can keep up with: media that waited too long is shed, not
//! delivered late.

use super::*;

/// The SFU node is frozen (SIGSTOP) for 400 ms while a publisher sends. When it runs
/// again, everything that queued in its socket meanwhile is older than the worker's limit:
/// it is counted as late and not forwarded, and the media that follows flows as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_that_queued_while_the_sfu_stalled_is_shed_not_delivered_late() -> anyhow::Result<()>
{
    let cluster = cluster_name();
    let reg = registry(&cluster).await;
    let sfu_node = sfu(&cluster, "sfu-late", "127.0.0.40", 10);
    let sig = signaling(&cluster, "sig-late", "127.0.0.41");
    wait_nodes(&reg, &["sfu-late"]).await;

    let mut alice = Client::join_at(sig.http.unwrap(), &token("stall", "alice", None)).await?;
    let bob = Client::join_at(sig.http.unwrap(), &token("stall", "bob", None)).await?;
    let r = alice.publish(&["microphone", "camera"]).await?;
    assert_eq!(r.msg_op(), "answer", "{}", r.to_json());
    bob.wait_media("bob receives alice", |t| packets_from(t, "alice") > 20)
        .await?;
    assert_eq!(
        late(&sfu_node).await,
        0.0,
        "nothing is late while it keeps up"
    );

    let pid = sfu_node.child.id().to_string();
    Command::new("kill").args(["-STOP", &pid]).status()?;
    tokio::time::sleep(Duration::from_millis(400)).await;
    Command::new("kill").args(["-CONT", &pid]).status()?;
    let before = packets_from(&bob.counts(), "alice");

    // Metrics are published once a second.
    let mut shed = 0.0;
    for _ in 0..50 {
        shed = late(&sfu_node).await;
        if shed > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // 400 ms of Opus alone is 20 packets; the camera adds more.
    assert!(shed >= 10.0, "packets shed as late: {shed}");
    bob.wait_media("media flows again after the stall", |t| {
        packets_from(t, "alice") > before + 50
    })
    .await?;
    drop((alice, bob));
    Ok(())
}

/// Received RTP the node did not forward because it waited too long.
async fn late(node: &Node) -> f64 {
    series_sum(node, "parlor_sfu_dropped_packets_total", "reason=\"late\"").await
}
