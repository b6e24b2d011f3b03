#!/usr/bin/env python3
"""Writes the Grafana dashboards in k8s/dashboards/ from the panels listed here.

  python3 scripts/dashboards.py          # write them
  python3 scripts/dashboards.py --check  # fail if a committed one differs

Every query names only metrics that Parlor exports (tests/metrics.rs scrapes a running
`parlor serve` and checks each name), so no panel points at nothing. Import a file in
Grafana (Dashboards > New > Import) and pick the Prometheus data source.
"""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "k8s/dashboards"

# (title, unit, [(query, legend)]); "heatmap" as the unit draws a histogram's buckets.
SFU = [
    ("Rooms, participants and tracks per node", "short", [
        ('sum by (instance) (parlor_sfu_rooms{job=~"$job"})', "{{instance}} rooms"),
        ('sum by (instance) (parlor_sfu_participants{job=~"$job"})', "{{instance}} participants"),
        ('sum by (instance, source) (parlor_sfu_tracks{job=~"$job"})', "{{instance}} {{source}} tracks"),
    ]),
    ("Packets per second", "pps", [
        ('sum by (instance) (rate(parlor_sfu_packets_in_total{job=~"$job"}[$__rate_interval]))', "{{instance}} in"),
        ('sum by (instance) (rate(parlor_sfu_packets_out_total{job=~"$job"}[$__rate_interval]))', "{{instance}} out"),
        ('sum by (instance) (rate(parlor_sfu_rtp_forwarded_total{job=~"$job"}[$__rate_interval]))', "{{instance}} forwarded"),
    ]),
    ("Bandwidth", "bps", [
        ('8 * sum by (instance) (rate(parlor_sfu_bytes_in_total{job=~"$job"}[$__rate_interval]))', "{{instance}} in"),
        ('8 * sum by (instance) (rate(parlor_sfu_bytes_out_total{job=~"$job"}[$__rate_interval]))', "{{instance}} out"),
    ]),
    ("Forwarded packets per send syscall", "short", [
        ('sum by (instance) (rate(parlor_sfu_packets_out_total{job=~"$job"}[$__rate_interval])) / clamp_min(sum by (instance) (rate(parlor_sfu_send_syscalls_total{job=~"$job"}[$__rate_interval])), 1)', "{{instance}}"),
    ]),
    ("Loss (receiver reports), 90th percentile", "percentunit", [
        ('histogram_quantile(0.9, sum by (direction, le) (rate(parlor_sfu_loss_ratio_bucket{job=~"$job"}[$__rate_interval])))', "{{direction}}"),
    ]),
    ("Dropped packets per second", "pps", [
        ('sum by (instance, reason) (rate(parlor_sfu_dropped_packets_total{job=~"$job"}[$__rate_interval]))', "{{instance}} {{reason}}"),
    ]),
    ("NACK, PLI and RTX per second", "short", [
        ('sum by (direction) (rate(parlor_sfu_nacks_total{job=~"$job"}[$__rate_interval]))', "NACK {{direction}}"),
        ('sum by (direction) (rate(parlor_sfu_plis_total{job=~"$job"}[$__rate_interval]))', "PLI {{direction}}"),
        ('sum(rate(parlor_sfu_rtx_packets_total{job=~"$job"}[$__rate_interval]))', "RTX sent"),
    ]),
    ("Round-trip time", "s", [
        ('histogram_quantile(0.5, sum by (le) (rate(parlor_sfu_rtt_seconds_bucket{job=~"$job"}[$__rate_interval])))', "p50"),
        ('histogram_quantile(0.99, sum by (le) (rate(parlor_sfu_rtt_seconds_bucket{job=~"$job"}[$__rate_interval])))', "p99"),
    ]),
    ("Jitter (subscribers' receiver reports)", "s", [
        ('histogram_quantile(0.5, sum by (kind, le) (rate(parlor_sfu_jitter_seconds_bucket{job=~"$job"}[$__rate_interval])))', "{{kind}} p50"),
        ('histogram_quantile(0.99, sum by (kind, le) (rate(parlor_sfu_jitter_seconds_bucket{job=~"$job"}[$__rate_interval])))', "{{kind}} p99"),
    ]),
    ("Egress bandwidth estimates", "Bps", [
        ('histogram_quantile(0.1, sum by (le) (rate(parlor_sfu_bandwidth_estimate_bytes_per_second_bucket{job=~"$job"}[$__rate_interval])))', "p10"),
        ('histogram_quantile(0.5, sum by (le) (rate(parlor_sfu_bandwidth_estimate_bytes_per_second_bucket{job=~"$job"}[$__rate_interval])))', "p50"),
    ]),
]

SIGNALING = [
    ("WebSocket connections and sessions", "short", [
        ('sum by (instance) (parlor_signaling_connections{job=~"$job"})', "{{instance}} connections"),
        ('sum by (instance) (parlor_signaling_sessions{job=~"$job"})', "{{instance}} sessions"),
    ]),
    ("Frames per second", "short", [
        ('sum by (instance) (rate(parlor_signaling_frames_in_total{job=~"$job"}[$__rate_interval]))', "{{instance}} in"),
        ('sum by (instance) (rate(parlor_signaling_frames_out_total{job=~"$job"}[$__rate_interval]))', "{{instance}} out"),
    ]),
    ("Join latency", "s", [
        ('histogram_quantile(0.5, sum by (le) (rate(parlor_signaling_join_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))', "p50"),
        ('histogram_quantile(0.95, sum by (le) (rate(parlor_signaling_join_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))', "p95"),
        ('histogram_quantile(0.99, sum by (le) (rate(parlor_signaling_join_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))', "p99"),
    ]),
    ("Joins per second", "short", [
        ('sum(rate(parlor_signaling_join_duration_seconds_count{job=~"$job"}[$__rate_interval]))', "joins"),
    ]),
    ("Errors sent to clients, by code", "short", [
        ('sum by (code) (rate(parlor_signaling_errors_total{job=~"$job"}[$__rate_interval]))', "{{code}}"),
    ]),
    ("Sessions taken over from a dead node", "short", [
        ('sum(increase(parlor_signaling_sessions_taken_over_total{job=~"$job"}[$__rate_interval]))', "taken over"),
    ]),
]

CHAT = [
    ("Gateway sessions", "short", [
        ('sum by (instance) (parlor_chat_gateway_sessions{job=~"$job"})', "{{instance}}"),
    ]),
    ("Gateway frames per second", "short", [
        ('sum by (direction) (rate(parlor_chat_gateway_frames_total{job=~"$job"}[$__rate_interval]))', "{{direction}}"),
    ]),
    ("Messages stored per second", "short", [
        ('sum by (instance) (rate(parlor_chat_messages_total{job=~"$job"}[$__rate_interval]))', "{{instance}}"),
    ]),
    ("API requests by status", "reqps", [
        ('sum by (class) (rate(parlor_chat_http_requests_total{job=~"$job"}[$__rate_interval]))', "{{class}}"),
    ]),
    ("Database query latency, 99th percentile", "s", [
        ('histogram_quantile(0.99, sum by (op, le) (rate(parlor_chat_db_query_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))', "{{op}}"),
    ]),
    ("Between chat nodes (bus)", "short", [
        ('sum(rate(parlor_chat_bus_published_total{job=~"$job"}[$__rate_interval]))', "published"),
        ('sum(rate(parlor_chat_bus_received_total{job=~"$job"}[$__rate_interval]))', "received"),
    ]),
    ("Web Push sent per second", "short", [
        ('sum(rate(parlor_chat_web_pushes_total{job=~"$job"}[$__rate_interval]))', "pushes"),
    ]),
]

# Every service's process, on each dashboard.
PROCESS = [
    ("CPU (cores)", "short", [
        ('rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])', "{{instance}}"),
    ]),
    ("Resident memory", "bytes", [
        ('process_resident_memory_bytes{job=~"$job"}', "{{instance}}"),
    ]),
    ("Open file descriptors", "short", [
        ('process_open_fds{job=~"$job"}', "{{instance}}"),
    ]),
]


def panel(i: int, title: str, unit: str, targets) -> dict:
    return {
        "id": i + 1,
        "type": "timeseries",
        "title": title,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
            for j, (expr, legend) in enumerate(targets)
        ],
    }


def dashboard(uid: str, title: str, job: str, panels) -> dict:
    return {
        "uid": uid,
        "title": title,
        "tags": ["parlor"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"},
                {
                    "name": "job",
                    "type": "custom",
                    "label": "Job",
                    "query": job,
                    "current": {"text": job, "value": job},
                    "options": [{"text": job, "value": job, "selected": True}],
                },
            ]
        },
        "panels": [panel(i, *p) for i, p in enumerate(panels + PROCESS)],
    }


DASHBOARDS = {
    "sfu.json": dashboard("parlor-sfu", "Parlor SFU", "parlor-sfu|parlor", SFU),
    "signaling.json": dashboard("parlor-signaling", "Parlor signaling", "parlor-signaling|parlor", SIGNALING),
    "chat.json": dashboard("parlor-chat", "Parlor chat", "parlor-chat|parlor", CHAT),
}


def main() -> int:
    stale = []
    for name, d in DASHBOARDS.items():
        text = json.dumps(d, indent=2) + "\n"
        path = OUT / name
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"stale dashboards {stale}: run python3 scripts/dashboards.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
