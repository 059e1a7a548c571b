#!/usr/bin/env python3
"""Turns bench/suite.sh's raw records into suite.md, suite.csv and suite.png.

    python3 bench/report.py RAW.tsv OUT_DIR

RAW.tsv has one record a line: `kind<TAB>key=value<TAB>...` (kinds: meta, pass,
run, rss, edge_idle, churn, stream, idle). Medians are taken over the runs of
each (pass, scenario, contender); the CPU ratio is the contender's median CPU
per request over the reference peer's (same pass).
"""

import csv
import os
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict

THROUGHPUT = ["hit-1k", "hit-100k", "hit-100k-disk", "hit-gzip-10k", "pass-1k", "pass-100k", "hook-1k",
              "hooks4-1k", "bluegreen-1k", "churn"]
CONTENDERS = ["edge", "nginx-cache", "nginx-njs", "varnish", "nginx-pass", "haproxy"]
# scenario -> (reference, second reference); a reference is (scenario, contender).
REFS = {
    "hit-1k": (("hit-1k", "nginx-cache"), ("hit-1k", "varnish")),
    "hit-100k": (("hit-100k", "nginx-cache"), ("hit-100k", "varnish")),
    "hit-100k-disk": (("hit-100k-disk", "nginx-cache"), ("hit-100k", "edge")),
    "hit-gzip-10k": (("hit-gzip-10k", "nginx-cache"), ("hit-1k", "edge")),
    "pass-1k": (("pass-1k", "nginx-pass"), ("pass-1k", "haproxy")),
    "pass-100k": (("pass-100k", "nginx-pass"), ("pass-100k", "haproxy")),
    "hook-1k": (("hit-1k", "nginx-cache"), ("hit-1k", "edge")),
    "hooks4-1k": (("hit-1k", "nginx-cache"), ("hit-1k", "edge")),
    "bluegreen-1k": (("bluegreen-1k", "nginx-njs"), ("hit-1k", "edge")),
    "churn": (("hit-1k", "edge"), ("hit-1k", "nginx-cache")),
}
STREAM_HWM_FLAT_MIB = 8  # "flat": peak RSS grows less than this while 1 GiB streams
MIB = 1024.0
OTHER_LOAD_NOTE = 5  # note rows where other processes used this much of a core (% ) during the runs


def read_raw(path):
    recs = defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if not parts or not parts[0]:
                continue
            kv = {}
            for p in parts[1:]:
                k, _, v = p.partition("=")
                kv[k] = v
            recs[parts[0]].append(kv)
    return recs


def num(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=0, suffix=""):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}{suffix}"


def plain(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def pass_label(p, workers):
    return f"{p} ({workers} worker{'s' if str(workers) != '1' else ''})"


def main():
    raw, out_dir = sys.argv[1], sys.argv[2]
    recs = read_raw(raw)
    meta = {}
    for m in recs["meta"]:
        meta.update(m)
    passes = [(r["pass"], r["workers"]) for r in recs["pass"]]
    workers_of = dict(passes)

    runs = defaultdict(list)
    for r in recs["run"]:
        runs[(r["pass"], r["scenario"], r["contender"])].append(r)
    rss = {(r["pass"], r["scenario"], r["contender"]): num(r["rss_kb"], 0) / MIB for r in recs["rss"]}
    churn = {r["pass"]: r for r in recs["churn"]}
    edge_idle = {r["pass"]: num(r["rss_kb"], 0) / MIB for r in recs["edge_idle"]}

    # Medians per (pass, scenario, contender).
    agg = {}
    for key, rs in runs.items():
        a = {f: med([num(r.get(f)) for r in rs]) for f in ("rps", "p50", "p99", "cpu", "other_pct")}
        a["errors"] = sum(int(num(r["errors"], 0)) for r in rs)
        a["cache"] = {c: sum(int(num(r.get(c), 0)) for r in rs) for c in ("hit", "miss", "refreshhit", "error")}
        a["rss"] = rss.get(key)
        a["runs"] = len(rs)
        a["repeats"] = sum(int(num(r.get("repeats"), 0)) for r in rs)
        agg[key] = a

    def ratio(p, sc, who, ref, field="cpu"):
        if ref is None:
            return None, ""
        mine = agg.get((p, sc, who), {}).get(field)
        base = agg.get((p, ref[0], ref[1]), {}).get(field)
        if mine is None or not base or (ref[0] == sc and ref[1] == who):
            return None, ""
        name = ref[1] if ref[0] == sc else f"{ref[1]} {ref[0]}"
        return mine / base, name

    rows = []  # for the CSV, one per scenario x contender x pass
    md = []
    md.append("# Edge performance suite\n")
    md.append(
        f"{meta.get('date', '')[:10]}, commit `{meta.get('commit', '?')}`"
        + (f" plus uncommitted changes in {meta['dirty']} file(s) of host/ or Cargo.*" if meta.get("dirty", "0") != "0" else "")
        + f", {meta.get('nproc', '?')} cores "
        f"({meta.get('cpu', '?')}); nginx {meta.get('nginx', '?')}, Varnish {meta.get('varnish', '?')}, "
        f"HAProxy {meta.get('haproxy', '?')}, wrk {meta.get('wrk', '?')}. "
        f"Every server, wrk and the origin share this machine, on loopback.\n"
    )
    md.append(
        f"Throughput scenarios: `wrk -t1 -c{meta.get('conns', '?')} --latency`, warm-up {meta.get('warmup', '?')}, "
        f"then {meta.get('runs', '?')} run(s) of {meta.get('duration', '?')}; medians. CPU µs/req = the server's "
        "processes' utime+stime (/proc/PID/stat, main process and all descendants, all threads) over a run "
        "divided by the requests wrk completed; the origin's CPU is not counted. RSS = sum of VmRSS of those "
        "processes after the runs. Pass `1`: edge `--workers 1`, nginx `worker_processes 1`, HAProxy "
        "`nbthread 1`; pass `all`: one per core. **Varnish cannot be held to one worker** (a thread per "
        "active connection, default thread pools) in either pass. The origin (nginx) has one worker in both. "
        f"Notes say \"other load\" where other processes on the machine (not the server, the origin or wrk) "
        f"used ≥ {OTHER_LOAD_NOTE}% of a core during the runs kept (median; /proc/stat minus those): such rows "
        f"are noisy. A run with more than that is repeated up to twice. Load average at the start: "
        f"{meta.get('loadavg', '?')}.\n"
    )
    if meta.get("elapsed_s"):
        s = int(num(meta["elapsed_s"], 0))
        md.append(f"Whole run: {s // 60} min {s % 60} s"
                  + (f" (of which the build {int(num(meta['build_s'], 0))} s)" if meta.get("build_s") else "")
                  + f"; waited {meta.get('quiet_wait_s', '?')} s for a quiet machine; "
                  + f"{meta.get('runs_repeated', '?')} run(s) repeated because other processes were busy.\n")

    md.append("## Throughput, latency and CPU per request\n")
    md.append(
        "References: cache hits vs nginx-cache (2nd: Varnish); pass-through vs nginx-pass (2nd: HAProxy); "
        "hooks vs nginx-cache's hit-1k (2nd: edge's own hit-1k); churn vs edge's steady hit-1k (2nd: "
        "nginx-cache hit-1k). Ratios below 1 mean less CPU than the reference.\n"
    )
    md.append("| pass | scenario | contender | req/s | p50 µs | p99 µs | CPU µs/req | CPU vs ref | CPU vs 2nd ref | RSS MiB | notes |")
    md.append("|---|---|---|---:|---:|---:|---:|---|---|---:|---|")
    chart = defaultdict(dict)  # (pass, scenario) -> contender -> cpu
    for p, w in passes:
        for sc in THROUGHPUT:
            for who in CONTENDERS:
                a = agg.get((p, sc, who))
                if not a:
                    continue
                r1, n1 = ratio(p, sc, who, REFS[sc][0])
                r2, n2 = ratio(p, sc, who, REFS[sc][1])
                notes = []
                if who == "edge":
                    total = sum(a["cache"].values())
                    if total:
                        mix = ", ".join(
                            f"{k} {100.0 * v / total:.1f}%"
                            for k, v in (("Hit", a["cache"]["hit"]), ("Miss", a["cache"]["miss"]),
                                         ("RefreshHit", a["cache"]["refreshhit"]), ("Error", a["cache"]["error"]))
                            if v
                        )
                        notes.append(f"x-cache: {mix}")
                if who == "varnish":
                    notes.append("threads not bounded")
                if a["errors"]:
                    notes.append(f"**{a['errors']} wrk errors**")
                if a["repeats"]:
                    notes.append(f"{a['repeats']} run(s) repeated")
                if a["other_pct"] is not None and a["other_pct"] >= OTHER_LOAD_NOTE:
                    notes.append(f"other load {a['other_pct']:.0f}% of a core")
                rps_ratio = None
                if sc == "churn":
                    rps_ratio, _ = ratio(p, sc, who, ("hit-1k", "edge"), "rps")
                    c = churn.get(p, {})
                    notes.append(
                        f"req/s {plain(rps_ratio)}× steady hit-1k; config PUTs {c.get('puts_ok', '?')} ok, "
                        f"{c.get('puts_failed', '?')} failed"
                    )
                md.append(
                    f"| {p} | {sc} | {who} | {fmt(a['rps'])} | {fmt(a['p50'])} | {fmt(a['p99'])} | "
                    f"{fmt(a['cpu'], 2)} | {(plain(r1) + '× ' + n1) if r1 is not None else ('ref' if not n1 and REFS[sc][0] == (sc, who) else '')} | "
                    f"{(plain(r2) + '× ' + n2) if r2 is not None else ''} | {fmt(a['rss'], 1)} | {'; '.join(notes)} |"
                )
                chart[(p, sc)][who] = a["cpu"]
                rows.append({
                    "pass": p, "workers": w, "scenario": sc, "contender": who,
                    "req_s": plain(a["rps"], 0), "p50_us": plain(a["p50"], 0), "p99_us": plain(a["p99"], 0),
                    "cpu_us_per_req": plain(a["cpu"]), "ref": n1, "cpu_vs_ref": plain(r1, 3),
                    "ref2": n2, "cpu_vs_ref2": plain(r2, 3), "rss_mib": plain(a["rss"], 1),
                    "errors": a["errors"], "rps_vs_steady": plain(rps_ratio, 3), "other_load_pct": plain(a["other_pct"], 0),
                    "x_cache_hit": a["cache"]["hit"] if who == "edge" else "",
                    "x_cache_miss": a["cache"]["miss"] if who == "edge" else "",
                    "note": "; ".join(notes),
                })

    streams = recs["stream"]
    if streams:
        md.append("\n## stream-1g: one 1 GiB object through the proxy (curl to /dev/null)\n")
        md.append("Edge uses its pass-through distribution (TTLs 0; 1 GiB is over `--max-object-bytes` anyway). "
                  "VmHWM is the peak RSS (sum over the server's processes), read before and after the transfer.\n")
        md.append("| pass | contender | MiB/s | seconds | CPU s | VmHWM before MiB | VmHWM after MiB | RSS after MiB | notes |")
        md.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for s in streams:
            p, who = s["pass"], s["contender"]
            size, secs = num(s["bytes"], 0), num(s["seconds"], 0)
            mibs = size / 1048576 / secs if secs else None
            h0, h1 = num(s["hwm_before_kb"], 0) / MIB, num(s["hwm_after_kb"], 0) / MIB
            cpu_s = num(s["ticks"], 0) / num(meta.get("hz"), 100.0)
            note = "" if s["code"] == "200" and size == 1073741824 else f"**HTTP {s['code']}, {int(size)} bytes**"
            md.append(f"| {p} | {who} | {fmt(mibs)} | {secs:.2f} | {cpu_s:.2f} | {h0:.1f} | {h1:.1f} | "
                      f"{num(s['rss_after_kb'], 0) / MIB:.1f} | {note} |")
            rows.append({"pass": p, "workers": workers_of.get(p, ""), "scenario": "stream-1g", "contender": who,
                         "throughput_mib_s": plain(mibs, 0), "seconds": plain(secs, 2), "cpu_s": plain(cpu_s, 2),
                         "hwm_before_mib": plain(h0, 1), "hwm_after_mib": plain(h1, 1),
                         "rss_mib": plain(num(s["rss_after_kb"], 0) / MIB, 1), "note": note})

    idles = recs["idle"]
    if idles:
        n = idles[0].get("conns", "10000")
        md.append(f"\n## idle-10k: memory for {n} idle keep-alive connections\n")
        md.append("Each connection sent one GET /1k.html (a cache hit; a pass-through for HAProxy), read the "
                  "answer and stayed open (bench/idle_conns.py). RSS summed over the server's processes, before "
                  "opening and 2 s after the last connection was ready.\n")
        md.append("| pass | contender | RSS before MiB | RSS with conns MiB | increase MiB | KiB per conn | conns ok | still open after | open took s |")
        md.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in idles:
            p, who = s["pass"], s["contender"]
            r0, r1 = num(s["rss_before_kb"], 0), num(s["rss_after_kb"], 0)
            ok = int(num(s.get("ok"), 0))
            per = (r1 - r0) / ok if ok else None
            md.append(f"| {p} | {who} | {r0 / MIB:.1f} | {r1 / MIB:.1f} | {(r1 - r0) / MIB:.1f} | {fmt(per, 1)} | "
                      f"{ok} | {s.get('open', '?')} | {s.get('seconds', '?')} |")
            rows.append({"pass": p, "workers": workers_of.get(p, ""), "scenario": "idle-10k", "contender": who,
                         "rss_before_mib": plain(r0 / MIB, 1), "rss_mib": plain(r1 / MIB, 1),
                         "rss_increase_mib": plain((r1 - r0) / MIB, 1), "kib_per_conn": plain(per, 2),
                         "conns_ok": ok, "conns_open_after": s.get("open", ""),
                         "note": f"{s.get('failed', 0)} failed" if s.get("failed") not in (None, "0") else ""})

    hostiles = recs["hostile"]
    if hostiles:
        n = hostiles[0].get("conns", "10000")
        md.append(f"\n## hostile-10k: normal viewers while {n} hostile connections are held open\n")
        md.append("hit-1k measured as above, then again while bench/hostile_conns.py holds the connections "
                  "open (a lone `P`, a partial HTTP/2 preface, h2c after the preface, a slowloris head, a "
                  "reader that stops reading 64 pipelined 100 KiB responses, and for edge TLS after the "
                  "handshake), opening again each one the server closes. Descriptors and RSS summed over the "
                  "server's processes, before and at the end of the measured runs.\n")
        md.append("| pass | contender | p99 µs without | p99 µs with | p99 ratio | req/s without | req/s with | "
                  "wrk errors with | descriptors before → during | RSS MiB before → during | hostile open at end | "
                  "closed by the server meanwhile |")
        md.append("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|")
        for s in hostiles:
            p, who = s["pass"], s["contender"]
            base = agg.get((p, "hostile-base", who), {})
            under = agg.get((p, "hostile-10k", who), {})
            pr = under["p99"] / base["p99"] if base.get("p99") and under.get("p99") is not None else None
            r0, r1 = num(s["rss_before_kb"], 0) / MIB, num(s["rss_during_kb"], 0) / MIB
            md.append(f"| {p} | {who} | {fmt(base.get('p99'))} | {fmt(under.get('p99'))} | {plain(pr)} | "
                      f"{fmt(base.get('rps'))} | {fmt(under.get('rps'))} | {under.get('errors', '?')} | "
                      f"{s.get('fds_before', '?')} → {s.get('fds_during', '?')} | {r0:.1f} → {r1:.1f} | "
                      f"{s.get('open', '?')} | {s.get('reopened', '?')} |")
            rows.append({"pass": p, "workers": workers_of.get(p, ""), "scenario": "hostile-10k", "contender": who,
                         "p99_us": plain(under.get("p99"), 0), "p99_vs_without": plain(pr, 3),
                         "req_s": plain(under.get("rps"), 0), "errors": under.get("errors", ""),
                         "fds": s.get("fds_during", ""), "rss_mib": plain(r1, 1),
                         "note": f"{s.get('open', '?')} hostile open at end, {s.get('by_shape', '')}"})

    # Targets.
    md.append("\n## Targets\n")
    md.append("| pass | target | measured | result |")
    md.append("|---|---|---|---|")
    met_count = [0, 0]

    def target(p, text, value, ok, shown):
        if value is None:
            md.append(f"| {p} | {text} | not measured | - |")
            return
        met_count[0 if ok else 1] += 1
        md.append(f"| {p} | {text} | {shown} | {'met' if ok else '**missed**'} |")

    for p, _ in passes:
        for sc in ("hit-1k", "hit-100k"):
            r, _ = ratio(p, sc, "edge", (sc, "nginx-cache"))
            target(p, f"{sc}: edge CPU/req ≤ 1.0× nginx proxy_cache", r, r is not None and r <= 1.0, f"{plain(r)}×")
            r, _ = ratio(p, sc, "edge", (sc, "varnish"))
            target(p, f"{sc}: edge CPU/req ≤ 0.7× Varnish", r, r is not None and r <= 0.7, f"{plain(r)}×")
            e, n = agg.get((p, sc, "edge"), {}).get("p99"), agg.get((p, sc, "nginx-cache"), {}).get("p99")
            r = e / n if e is not None and n else None
            target(p, f"{sc}: edge p99 ≤ nginx proxy_cache's", r, r is not None and r <= 1.0,
                   f"{fmt(e)} vs {fmt(n)} µs ({plain(r)}×)" if r is not None else "")
        r, _ = ratio(p, "hit-100k-disk", "edge", ("hit-100k-disk", "nginx-cache"))
        target(p, "hit-100k-disk: edge CPU/req from its disk tier ≤ 1.0× nginx proxy_cache", r,
               r is not None and r <= 1.0, f"{plain(r)}×")
        r, _ = ratio(p, "hit-gzip-10k", "edge", ("hit-gzip-10k", "nginx-cache"))
        target(p, "hit-gzip-10k: edge CPU/req for a compressed hit ≤ 1.0× nginx proxy_cache with gzip on", r,
               r is not None and r <= 1.0, f"{plain(r)}×")
        r, _ = ratio(p, "hook-1k", "edge", ("hit-1k", "nginx-cache"))
        target(p, "hook-1k: edge CPU/req ≤ 1.3× nginx proxy_cache (no hook)", r, r is not None and r <= 1.3, f"{plain(r)}×")
        r, _ = ratio(p, "hook-1k", "edge", ("hit-1k", "edge"))
        target(p, "hook-1k: edge CPU/req ≤ 1.5× its plain hit", r, r is not None and r <= 1.5, f"{plain(r)}×")
        r, _ = ratio(p, "bluegreen-1k", "edge", ("bluegreen-1k", "nginx-njs"))
        target(p, "bluegreen-1k: edge CPU/req ≤ 1.0× nginx + njs", r, r is not None and r <= 1.0, f"{plain(r)}×")
        # The routing's own cost: each one's CPU/req over its plain hit.
        cpu = lambda sc, who: agg.get((p, sc, who), {}).get("cpu")
        e_bg, e_hit, n_bg, n_hit = (cpu("bluegreen-1k", "edge"), cpu("hit-1k", "edge"),
                                    cpu("bluegreen-1k", "nginx-njs"), cpu("hit-1k", "nginx-cache"))
        if None not in (e_bg, e_hit, n_bg, n_hit):
            e_cost, n_cost = e_bg - e_hit, n_bg - n_hit
            target(p, "bluegreen-1k: the hook adds ≤ njs's cost over a plain hit", e_cost,
                   e_cost <= n_cost, f"{e_cost:.1f} vs {n_cost:.1f} µs")
            target(p, "bluegreen-1k (moonshot): the hook adds ≤ 10 µs over a plain hit", e_cost,
                   e_cost <= 10, f"{e_cost:.1f} µs")
        for sc in ("pass-1k", "pass-100k"):
            for peer, label in (("haproxy", "HAProxy"), ("nginx-pass", "nginx proxy_pass")):
                r, _ = ratio(p, sc, "edge", (sc, peer))
                target(p, f"{sc}: edge CPU/req ≤ 1.0× {label}", r, r is not None and r <= 1.0, f"{plain(r)}×")
        host_edge = next((s for s in hostiles if s["pass"] == p and s["contender"] == "edge"), None)
        if host_edge:
            base = agg.get((p, "hostile-base", "edge"), {})
            under = agg.get((p, "hostile-10k", "edge"), {})
            if base.get("p99") and under.get("p99") is not None:
                pr = under["p99"] / base["p99"]
                target(p, f"{host_edge.get('conns')} hostile connections: edge's viewer p99 ≤ 2× without", pr,
                       pr <= 2.0, f"{plain(pr)}× ({fmt(base['p99'])} → {fmt(under['p99'])} µs)")
            errs = under.get("errors")
            target(p, "hostile connections: no normal request fails", errs, errs == 0, f"{errs} wrk errors")
        idle_edge = next((s for s in idles if s["pass"] == p and s["contender"] == "edge"), None)
        if p in edge_idle:
            target(p, "edge idle RSS, just started and configured (no connections) < 40 MiB", edge_idle[p],
                   edge_idle[p] < 40, f"{edge_idle[p]:.1f} MiB")
        if idle_edge:
            r0 = num(idle_edge["rss_before_kb"], 0) / MIB
            target(p, "edge idle RSS after the load above (no connections) < 40 MiB", r0, r0 < 40, f"{r0:.1f} MiB")
            inc = (num(idle_edge["rss_after_kb"], 0) - num(idle_edge["rss_before_kb"], 0)) / MIB
            target(p, f"{idle_edge.get('conns')} idle connections: edge RSS < 60 MiB more", inc, inc < 60,
                   f"+{inc:.1f} MiB ({idle_edge.get('ok')} ok, {idle_edge.get('open')} still open)")
        r, _ = ratio(p, "churn", "edge", ("hit-1k", "edge"), "rps")
        target(p, "churn: req/s within 5 % of steady hit-1k", r, r is not None and r >= 0.95, f"{plain(r)}×")
        st = next((s for s in streams if s["pass"] == p and s["contender"] == "edge"), None)
        if st:
            g = (num(st["hwm_after_kb"], 0) - num(st["hwm_before_kb"], 0)) / MIB
            target(p, f"stream-1g: edge peak RSS flat (VmHWM grows < {STREAM_HWM_FLAT_MIB} MiB)", g,
                   g < STREAM_HWM_FLAT_MIB and st["code"] == "200", f"+{g:.1f} MiB")
    md.append(f"\n{met_count[0]} met, {met_count[1]} missed.\n")
    md.append(f"Per-run numbers: `suite-raw.tsv`. Chart: `suite.png`.\n")
    if passes and edge_idle:
        md.append("Edge RSS right after start and configuration (caches filled, no load yet): " + ", ".join(
            f"pass {p}: {edge_idle[p]:.1f} MiB" for p, _ in passes if p in edge_idle) + ".\n")

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "suite.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")

    fields = ["pass", "workers", "scenario", "contender", "req_s", "p50_us", "p99_us", "cpu_us_per_req",
              "ref", "cpu_vs_ref", "ref2", "cpu_vs_ref2", "rss_mib", "errors", "rps_vs_steady", "other_load_pct",
              "x_cache_hit", "x_cache_miss", "rss_before_mib", "rss_increase_mib", "kib_per_conn", "conns_ok",
              "conns_open_after", "throughput_mib_s", "seconds", "cpu_s", "hwm_before_mib", "hwm_after_mib", "note"]
    with open(os.path.join(out_dir, "suite.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    shutil.copyfile(raw, os.path.join(out_dir, "suite-raw.tsv"))

    # Chart: CPU µs per request, one panel per pass, clustered by scenario.
    work = os.path.dirname(os.path.abspath(raw))
    used = [c for c in CONTENDERS if any(c in chart[k] for k in chart)]
    if not chart or not used:
        return
    panels = []
    for p, w in passes:
        scs = [sc for sc in THROUGHPUT if (p, sc) in chart]
        if not scs:
            continue
        dat = os.path.join(work, f"chart-{p}.dat")
        with open(dat, "w", encoding="utf-8") as f:
            f.write("# scenario " + " ".join(used) + "\n")
            for sc in scs:
                vals = [chart[(p, sc)].get(c) for c in used]
                f.write(sc + " " + " ".join("-" if v is None else f"{v:.2f}" for v in vals) + "\n")
        panels.append((p, w, dat))
    if not panels:
        return
    gp = os.path.join(work, "chart.gp")
    colors = {"edge": "#1f77b4", "nginx-cache": "#2ca02c", "varnish": "#9467bd", "nginx-pass": "#8c564b",
              "haproxy": "#ff7f0e", "nginx-njs": "#17becf"}
    with open(gp, "w", encoding="utf-8") as f:
        f.write(f"set terminal pngcairo size 1200,{430 * len(panels) + 30} font 'sans,10'\n")
        f.write(f"set output '{os.path.join(out_dir, 'suite.png')}'\n")
        f.write("set datafile missing '-'\nset style data histogram\nset style histogram clustered gap 1\n")
        f.write("set style fill solid 0.85 border -1\nset boxwidth 0.9\nset grid ytics\n")
        f.write("set key outside right top vertical\nset offsets 0, 0, graph 0.08, 0\n")
        f.write("set ylabel 'server CPU µs per request'\nset yrange [0:*]\n")
        f.write(f"set multiplot layout {len(panels)},1 title 'Edge suite: CPU per request (lower is better)'\n")
        for p, w, dat in panels:
            n = sum(1 for line in open(dat, encoding="utf-8") if not line.startswith("#"))
            f.write(f"set title 'pass {pass_label(p, w)}'\nset xrange [-0.6:{n - 0.4}]\n")
            parts = []
            for i, c in enumerate(used):
                parts.append(f"'{dat}' using {i + 2}:xtic(1) title '{c}' lc rgb '{colors[c]}'")
            f.write("plot " + ", \\\n     ".join(parts) + "\n")
        f.write("unset multiplot\n")
    try:
        subprocess.run(["gnuplot", gp], check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"gnuplot failed: {err}", file=sys.stderr)


if __name__ == "__main__":
    main()
