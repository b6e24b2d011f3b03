//! How a `media` run is shown: a table row per run, the JSON report, and for a sweep an
//! SVG chart of latency and CPU per packet against subscribers (the chart drawing is
//! shared with the `chat` sweep).

use serde_json::{Value, json};

/// The limits a sweep holds every step to.
pub(crate) const MAX_LOSS: f64 = 0.01;
pub(crate) const MAX_P99_MS: f64 = 50.0;

pub(crate) fn within_limits(r: &Value) -> bool {
    let loss = r["loss"].as_f64().unwrap_or(1.0);
    let p99 = r["latency_ms"]["p99"].as_f64().unwrap_or(f64::INFINITY);
    r["clients_failed"].as_u64() == Some(0) && loss <= MAX_LOSS && p99 <= MAX_P99_MS
}

/// Latency columns: at the packets' arrival in the clients' sockets (what the SFU and the
/// network added), and the p99 once the bench had read them.
const HEADER: &str = "rooms×pub×sub  fwd pkt/s  loss    p50 ms  p99 ms  read p99  TTFF p95  µs/pkt  core   pkt/syscall  KiB/participant";

pub(crate) fn row(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    format!(
        "{:>13}  {:>9.0}  {:>5.2}%  {:>6.1}  {:>6.1}  {:>8.1}  {:>8.0}  {:>6.2}  {:>4.0}%  {:>11.2}  {:>15.0}",
        format!(
            "{}×{}×{}",
            r["rooms"], r["publishers_per_room"], r["subscribers_per_room"]
        ),
        f(&r["forwarded_packets_per_s"]),
        f(&r["loss"]) * 100.0,
        f(&r["latency_ms"]["p50"]),
        f(&r["latency_ms"]["p99"]),
        f(&r["latency_read_ms"]["p99"]),
        f(&r["ttff_ms"]["p95"]),
        f(&r["server_cpu_us_per_forwarded_packet"]),
        f(&r["server_cpu_share_of_one_core"]) * 100.0,
        f(&r["packets_per_send_syscall"]),
        f(&r["server_rss_kib_per_participant"]),
    )
}

/// Prints the table (unless the JSON goes to standard output) and writes the JSON and
/// the chart. `best` is a sweep's answer: the most subscribers within the limits.
pub(crate) fn emit(
    runs: &[Value],
    json_to: Option<&str>,
    svg_to: Option<&str>,
    best: Option<Option<usize>>,
) -> anyhow::Result<()> {
    let report = match best {
        Some(best) => json!({
            "sweep": runs,
            "limits": {"loss": MAX_LOSS, "p99_ms": MAX_P99_MS},
            "max_subscribers_within_limits": best,
        }),
        None => runs.first().cloned().unwrap_or(Value::Null),
    };
    let text = serde_json::to_string_pretty(&report)?;
    if json_to == Some("-") {
        println!("{text}");
    } else {
        println!("{HEADER}");
        for r in runs {
            println!("{}", row(r));
        }
        for r in runs {
            if let Some(layers) = r["received_video_packets_per_s_by_layer"].as_array() {
                let each: Vec<String> = layers
                    .iter()
                    .map(|l| {
                        let n = l["packets_per_s"].as_f64().unwrap_or(f64::NAN);
                        format!("{} {n:.0}", l["rid"].as_str().unwrap_or("?"))
                    })
                    .collect();
                println!(
                    "{} subscribers: video packets/s received by simulcast layer: {}",
                    r["subscribers_per_room"],
                    each.join(", ")
                );
            }
        }
        if let Some(best) = best {
            match best {
                Some(n) => println!(
                    "most subscribers per room within {:.0}% loss and {MAX_P99_MS} ms p99: {n}",
                    MAX_LOSS * 100.0
                ),
                None => println!("the first step already passed the limits"),
            }
        }
        if let Some(path) = json_to {
            std::fs::write(path, &text)?;
        }
    }
    if let Some(path) = svg_to {
        std::fs::write(path, svg(runs))?;
    }
    Ok(())
}

/// Two lines against subscribers per room: p99 latency (left axis) and CPU µs per
/// forwarded packet (right axis), with the latency limit dashed.
pub(crate) fn svg(runs: &[Value]) -> String {
    let pts: Vec<(f64, f64, f64)> = runs
        .iter()
        .map(|r| {
            (
                r["subscribers_per_room"].as_f64().unwrap_or(0.0),
                r["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
                r["server_cpu_us_per_forwarded_packet"]
                    .as_f64()
                    .unwrap_or(0.0),
            )
        })
        .collect();
    let c = Chart {
        x: "subscribers per room",
        left: "p99 latency, ms",
        right: "CPU µs per forwarded packet",
        limit: MAX_P99_MS,
    };
    chart(&pts, &c)
}

/// What a sweep's chart names: its x axis, its two lines, and the latency limit drawn
/// dashed on the left axis.
pub(crate) struct Chart<'a> {
    pub x: &'a str,
    pub left: &'a str,
    pub right: &'a str,
    pub limit: f64,
}

/// Two lines against x: `(x, left, right)` per point, each line on its own axis.
pub(crate) fn chart(pts: &[(f64, f64, f64)], c: &Chart) -> String {
    let (w, h, l, r, t, b) = (640.0, 360.0, 60.0, 60.0, 30.0, 40.0);
    let max_x = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_lat = pts.iter().map(|p| p.1).fold(c.limit * 1.2, f64::max);
    let max_cpu = pts.iter().map(|p| p.2).fold(1.0, f64::max) * 1.2;
    let x = |v: f64| l + v / max_x * (w - l - r);
    let y = |v: f64, max: f64| h - b - v / max * (h - t - b);
    let line = |f: &dyn Fn(&(f64, f64, f64)) -> f64, max: f64| {
        pts.iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(f(p), max)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<line x1="{l}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="black"/>
<line x1="{l}" y1="{t}" x2="{l}" y2="{yb}" stroke="black"/>
<line x1="{xr}" y1="{t}" x2="{xr}" y2="{yb}" stroke="black"/>
<line x1="{l}" y1="{ylim:.1}" x2="{xr}" y2="{ylim:.1}" stroke="#c0392b" stroke-dasharray="4 4"/>
<text x="{cx}" y="{h_1}" text-anchor="middle">{xl} (max {max_x:.0})</text>
<text x="8" y="20" fill="#c0392b">{ll} (max {max_lat:.0})</text>
<text x="{xr}" y="20" text-anchor="end" fill="#2c3e50">{rl} (max {max_cpu:.1})</text>
<polyline fill="none" stroke="#c0392b" stroke-width="2" points="{lat}"/>
<polyline fill="none" stroke="#2c3e50" stroke-width="2" points="{cpu}"/>
"##,
        yb = h - b,
        xr = w - r,
        ylim = y(c.limit, max_lat),
        cx = w / 2.0,
        h_1 = h - 10.0,
        xl = c.x,
        ll = c.left,
        rl = c.right,
        lat = line(&|p| p.1, max_lat),
        cpu = line(&|p| p.2, max_cpu),
    );
    for p in pts {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            x(p.0),
            h - b + 15.0,
            p.0
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(subs: u64, loss: f64, p99: f64) -> Value {
        json!({"rooms": 1, "publishers_per_room": 1, "subscribers_per_room": subs,
               "clients_failed": 0, "loss": loss, "latency_ms": {"p50": 1.0, "p99": p99},
               "server_cpu_us_per_forwarded_packet": 5.0})
    }

    #[test]
    fn limits_are_loss_and_p99() {
        assert!(within_limits(&run(50, 0.001, 10.0)));
        assert!(!within_limits(&run(50, 0.02, 10.0)));
        assert!(!within_limits(&run(50, 0.0, 80.0)));
        let mut failed = run(50, 0.0, 1.0);
        failed["clients_failed"] = json!(1);
        assert!(!within_limits(&failed));
    }

    #[test]
    fn the_chart_has_a_point_per_run() {
        let s = svg(&[run(50, 0.0, 5.0), run(100, 0.0, 20.0), run(150, 0.0, 70.0)]);
        assert!(s.starts_with("<svg"));
        let lat = s
            .lines()
            .find(|l| l.contains("#c0392b\" stroke-width"))
            .unwrap();
        assert_eq!(lat.matches(',').count(), 3);
        assert!(s.contains(">150</text>"));
    }
}
