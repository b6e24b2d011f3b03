#!/usr/bin/env python3
"""The shape of the code (tests left out), for reviews of its structure: the largest
files, the longest functions, each crate's module import graph with its cycles, and where chat issues SQL
outside its store files.

    python3 scripts/shape.py [--top N]
"""
import argparse
import os
import re
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = {"proto": "proto/src", "edge": "edge/src", "sfu": "sfu/src",
          "signaling": "signaling/src", "chat": "chat/src", "cluster": "cluster/src", "parlor": "src",
          "bench": "bench/src"}


def files(exts, dirs=("proto", "edge", "sfu", "signaling", "chat", "cluster", "src", "bench", "web")):
    for d in dirs:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            if "/tests" in base[len(ROOT):] or "node_modules" in base:
                continue
            for n in names:
                if n.endswith(exts):
                    yield os.path.join(base, n)


def rel(p):
    return os.path.relpath(p, ROOT)


def functions(path):
    """(lines, name) of each Rust fn, by brace matching from its signature."""
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    in_tests = False
    for i, line in enumerate(lines):
        if re.match(r"\s*mod tests\b", line):
            in_tests = True
        m = re.match(r"\s*(pub(\([a-z]+\))? )?(async )?fn (\w+)", line)
        if not m or in_tests:
            continue
        depth, started = 0, False
        for j in range(i, len(lines)):
            depth += lines[j].count("{") - lines[j].count("}")
            if "{" in lines[j]:
                started = True
            if started and depth <= 0:
                out.append((j - i + 1, f"{rel(path)}:{i + 1} {m.group(4)}"))
                break
            if not started and lines[j].rstrip().endswith(";"):
                break
    return out


def import_graph(crate, src):
    mods = {}
    for base, _, names in os.walk(os.path.join(ROOT, src)):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(base, n)
                r = os.path.relpath(p, os.path.join(ROOT, src))[:-3]
                name = r.replace("/mod", "").replace("/", "::")
                mods[name] = p
    edges = defaultdict(set)
    for name, p in mods.items():
        text = open(p, encoding="utf-8").read()
        # `crate::a::b::Item` and `use crate::{a::b, c}` name modules a::b and c.
        paths = [m.group(1) for m in re.finditer(r"crate::((?:\w+::)*\w+)", text)]
        for g in re.finditer(r"crate::\{([^{}]*)\}", text):
            paths += [x.strip() for x in g.group(1).split(",") if x.strip()]
        for path in paths:
            parts = path.split("::")
            target = next((t for t in ("::".join(parts[:k]) for k in range(len(parts), 0, -1))
                           if t in mods), None)
            if target and target != name and not name.startswith(target + "::") \
                    and not target.startswith(name + "::"):
                edges[name].add(target)
    return edges


# Chat's layers, lowest first: a module may import only from its own layer or below.
LAYERS = ["model", "store", "error", "service", "routes"]


def layer_violations(edges):
    rank = {l: i for i, l in enumerate(LAYERS)}
    out = []
    for a, targets in edges.items():
        for b in targets:
            la, lb = a.split("::")[0], b.split("::")[0]
            if la in rank and lb in rank and rank[lb] > rank[la]:
                out.append(f"{a} -> {b}")
    return sorted(out)


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=10)
    a = ap.parse_args()
    sizes = sorted(((sum(1 for _ in open(p, encoding="utf-8")), rel(p))
                    for p in files((".rs", ".js"))), reverse=True)
    print(f"## largest files (of {len(sizes)})")
    for n, p in sizes[:a.top]:
        print(f"{n:6} {p}")
    fns = sorted((f for p in files((".rs",)) for f in functions(p)), reverse=True)
    print(f"\n## longest functions (of {len(fns)}; over 80 lines: {sum(1 for n, _ in fns if n > 80)})")
    for n, f in fns[:a.top]:
        print(f"{n:6} {f}")
    print("\n## module imports within each crate, and cycles")
    for crate, src in CRATES.items():
        e = import_graph(crate, src)
        c = cycles(e)
        print(f"{crate}: {sum(len(v) for v in e.values())} edges, "
              f"{'no cycle' if not c else 'cycles: ' + '; '.join(' <-> '.join(x) for x in c)}")
        if crate == "chat":
            v = layer_violations(e)
            print(f"chat layers {' < '.join(LAYERS)}: "
                  f"{'imports run one way' if not v else 'upward imports: ' + ', '.join(v)}")
    sql = defaultdict(int)
    for p in files((".rs",), ("chat",)):
        if "/tests/" in p or "/store/" in p:
            continue
        text = open(p, encoding="utf-8").read().split("mod tests")[0]
        k = len(re.findall(r"sqlx::query", text))
        if k:
            sql[rel(p)] = k
    print(f"\n## chat: SQL issued outside store/: {sum(sql.values())} sites in {len(sql)} files")
    for p, k in sorted(sql.items(), key=lambda x: -x[1]):
        print(f"{k:6} {p}")


if __name__ == "__main__":
    main()
