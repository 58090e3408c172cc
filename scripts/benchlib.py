#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (python3 standard library only).

  benchlib.py remap-list --size BYTES --unit U --every K
        print a compact remap= list (comma list, consecutive units as ranges)
        of every K-th unit of the origin: 0, K, 2K, ...
  benchlib.py badblocks --size BYTES --unit U --every K
        the same units, one per line (an e2fsprogs badblocks list with
        block size U)
  benchlib.py sample PID FILE [--interval S] [--root PID]
        until SIGTERM, append "time server_ticks host_busy_ticks other_ticks"
        lines to FILE.  server_ticks = utime+stime of PID (all its threads,
        exited ones included); host_busy_ticks from /proc/stat; other_ticks =
        CPU of every process that is not ROOT or one of its descendants
        (foreign load), refreshed every 5th sample.
  benchlib.py run-report DIR --out FILE
        turn one server run (DIR: meta.env, workloads.txt, *.fio.json, *.copy,
        cpu.samples) into a JSON record with one row per workload.
  benchlib.py summary OUT [--max-other C]
        read OUT/runs/*.json, pair remap and file runs, print Markdown tables
        (median ratio remap/file with min-max) and write OUT/summary.json.
"""
import argparse
import glob
import json
import os
import signal
import statistics
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
GIB = 1 << 30


# --------------------------------------------------------------- unit lists
def every_kth(size, unit, k):
    units = (size + unit - 1) // unit
    return list(range(0, units, k))


def compact(units):
    """Sorted unit numbers -> 'a,b-c,...' (runs of consecutive units as ranges)."""
    out = []
    i = 0
    while i < len(units):
        j = i
        while j + 1 < len(units) and units[j + 1] == units[j] + 1:
            j += 1
        out.append(str(units[i]) if i == j else "%d-%d" % (units[i], units[j]))
        i = j + 1
    return ",".join(out)


def cmd_remap_list(a):
    print(compact(every_kth(a.size, a.unit, a.every)))


def cmd_badblocks(a):
    for u in every_kth(a.size, a.unit, a.every):
        print(u)


# --------------------------------------------------------------- sampler
def proc_ticks(pid):
    """utime+stime of a process (whole thread group) in clock ticks, or None."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    rest = s[s.rindex(")") + 2:].split()
    # rest[0] is field 3 (state): utime = field 14, stime = field 15
    return int(rest[11]) + int(rest[12]), int(rest[1])  # ticks, ppid


def host_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: busy = all - idle - iowait
    return sum(v[:8]) - v[3] - v[4]


class Foreign:
    """Accumulates CPU ticks of processes outside the tree rooted at ROOT."""

    def __init__(self, root):
        self.root = root
        self.last = {}
        self.total = 0
        self.scan(count=False)

    def scan(self, count=True):
        info = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                r = proc_ticks(d)
                if r is not None:
                    info[int(d)] = r
        ours = {self.root}
        changed = True
        while changed:  # descendants of root
            changed = False
            for pid, (_, ppid) in info.items():
                if ppid in ours and pid not in ours:
                    ours.add(pid)
                    changed = True
        new = {}
        for pid, (t, _) in info.items():
            if pid in ours:
                continue
            new[pid] = t
            if count:
                self.total += t - self.last.get(pid, 0) if t >= self.last.get(pid, 0) else t
        self.last = new


def cmd_sample(a):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    fg = Foreign(a.root) if a.root else None
    n = 0
    with open(a.file, "w") as f:
        while not stop:
            r = proc_ticks(a.pid)
            if r is None:
                break
            if fg and n % 5 == 0:
                fg.scan()
            f.write("%.3f %d %d %d\n" % (time.time(), r[0], host_busy(),
                                         fg.total if fg else 0))
            f.flush()
            n += 1
            time.sleep(a.interval)


# --------------------------------------------------------------- reports
def load_samples(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 4:
                    out.append((float(p[0]), int(p[1]) / CLK_TCK,
                                int(p[2]) / CLK_TCK, int(p[3]) / CLK_TCK))
    except OSError:
        pass
    return out


def at(samples, t, k):
    """Column k of the samples, linearly interpolated at time t."""
    if not samples:
        return None
    if t <= samples[0][0]:
        return samples[0][k]
    if t >= samples[-1][0]:
        return samples[-1][k]
    lo, hi = 0, len(samples) - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if samples[mid][0] <= t:
            lo = mid
        else:
            hi = mid
    (t0, *v0), (t1, *v1) = samples[lo], samples[hi]
    f = (t - t0) / (t1 - t0) if t1 > t0 else 0
    return v0[k - 1] + (v1[k - 1] - v0[k - 1]) * f


def rate(samples, t0, t1, k):
    """Mean cores (CPU s per s) of column k over [t0, t1]."""
    a, b = at(samples, t0, k), at(samples, t1, k)
    if a is None or t1 <= t0:
        return None
    return (b - a) / (t1 - t0)


def read_env(path):
    d = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                d[k] = v
    return d


def fio_row(name, path, samples, trim):
    with open(path) as f:
        txt = f.read()
    d = json.loads(txt[txt.index("{"):])  # fio may print notes before the JSON
    j = d["jobs"][0]
    numjobs = int(j.get("job options", {}).get("numjobs", d.get("global options", {}).get("numjobs", 1)))
    rd, wr = j["read"], j["write"]
    nbytes = rd["io_bytes"] + wr["io_bytes"]
    ops = rd["total_ios"] + wr["total_ios"]
    # group_reporting sums job_runtime over the jobs; per-job measured window
    # (after the ramp) ends at fio's output timestamp
    rt = j["job_runtime"] / 1000.0 / max(numjobs, 1)
    t1 = d["timestamp_ms"] / 1000.0
    t0 = t1 - rt
    tr = min(trim, rt / 5)
    row = {"name": name, "kind": "fio", "bytes": nbytes, "ops": ops,
           "runtime_s": rt, "iops": ops / rt if rt else None,
           "mibps": nbytes / rt / (1 << 20) if rt else None,
           "errors": j.get("error", 0)}
    side = rd if rd["total_ios"] >= wr["total_ios"] else wr
    lat = side.get("lat_ns", {})
    pc = side.get("clat_ns", {}).get("percentile", {})
    row["lat_mean_us"] = lat.get("mean", 0) / 1000.0
    row["lat_p50_us"] = pc.get("50.000000", 0) / 1000.0
    row["lat_p99_us"] = pc.get("99.000000", 0) / 1000.0
    srv = rate(samples, t0 + tr, t1 - tr, 1)
    if srv is not None:
        cpu = srv * rt
        row["srv_cpu_cores"] = srv
        row["srv_cpu_s"] = cpu
        row["srv_cpu_s_per_gib"] = cpu / (nbytes / GIB) if nbytes else None
        row["srv_cpu_us_per_op"] = cpu / ops * 1e6 if ops else None
        row["host_busy_cores"] = rate(samples, t0 + tr, t1 - tr, 2)
        row["other_cores"] = rate(samples, t0, t1, 3)
    return row


def copy_row(name, path, samples):
    c = read_env(path)
    t0, t1 = float(c["t0"]), float(c["t1"])
    nbytes = int(c["bytes"])
    dt = t1 - t0
    row = {"name": name, "kind": "copy", "bytes": nbytes, "runtime_s": dt,
           "mibps": nbytes / dt / (1 << 20) if dt > 0 else None,
           "rc": int(c["rc"])}
    cpu = (int(c["ticks1"]) - int(c["ticks0"])) / CLK_TCK
    row["srv_cpu_s"] = cpu
    row["srv_cpu_cores"] = cpu / dt if dt > 0 else None
    row["srv_cpu_s_per_gib"] = cpu / (nbytes / GIB)
    row["host_busy_cores"] = rate(samples, t0, t1, 2)
    # the sampler refreshes foreign load every ~0.25 s: widen short windows
    w = max(0.0, 0.6 - dt) / 2
    row["other_cores"] = rate(samples, t0 - w, t1 + w, 3)
    if c["rc"] != "0":
        row["mibps"] = None
    return row


def cmd_run_report(a):
    meta = read_env(os.path.join(a.dir, "meta.env"))
    # workloads.txt: NAME KIND [SAMPLES_FILE]; the sparse rows run on a
    # server of their own whose sampler wrote a file of its own (its
    # cumulative counters start at zero: never mix two samplers' lines)
    cache = {}

    def samples_of(fname):
        if fname not in cache:
            cache[fname] = load_samples(os.path.join(a.dir, fname))
        return cache[fname]
    rows = []
    with open(os.path.join(a.dir, "workloads.txt")) as f:
        for line in f:
            p = line.split()
            if not p:
                continue
            name, kind = p[0], p[1]
            samples = samples_of(p[2] if len(p) > 2 else "cpu.samples")
            try:
                if kind == "fio":
                    rows.append(fio_row(name, os.path.join(a.dir, name + ".fio.json"),
                                        samples, a.trim))
                else:
                    rows.append(copy_row(name, os.path.join(a.dir, name + ".copy"), samples))
            except (OSError, ValueError, KeyError, IndexError) as e:
                rows.append({"name": name, "kind": kind, "failed": str(e)})
    rec = {"meta": meta, "rows": rows}
    with open(a.out, "w") as f:
        json.dump(rec, f, indent=1)


def primary(row):
    """The throughput figure of a row and its unit."""
    if row.get("kind") == "fio" and row["name"].startswith(("rr4k", "rw4k", "mix4k")):
        return row.get("iops"), "IOPS"
    return row.get("mibps"), "MiB/s"


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, nd=0):
    if v is None:
        return "–"
    if nd == 0:
        return "{:,.0f}".format(v)
    return "{:.{}f}".format(v, nd)


# Issue 12: throughput ratio remap/file per remapped fraction (cached
# mode), and server CPU per GiB at most 1.05 times the file plugin's.
TARGETS = {"0": 1.00, "1": 0.95, "10": 0.90}
CPU_TARGET = 1.05
MODES = {"cached": "cached origin",
         "direct": "cold origin: remap direct=yes vs file cache=none, caches dropped before each workload"}


def cmd_summary(a):
    runs = []
    for p in sorted(glob.glob(os.path.join(a.out, "runs", "*.json"))):
        with open(p) as f:
            runs.append(json.load(f))
    # key: (variant, pair) -> {"remap": run, "file": run}
    pairs = {}
    order = []
    for r in runs:
        m = r["meta"]
        key = (m["variant"], int(m["pair"]))
        pairs.setdefault(key, {})[m["server"]] = r
        if m["workloads"] not in order:
            order.append(m["workloads"])
    names = []
    for r in runs:
        for row in r["rows"]:
            if row["name"] not in names:
                names.append(row["name"])
    variants = sorted({k[0] for k in pairs}, key=lambda v: float(v))
    summary = {"max_other": a.max_other, "variants": {}}
    out = []
    for v in variants:
        keys = sorted(k for k in pairs if k[0] == v)
        info = {}
        vrun = next(iter(pairs[keys[0]].values()))["meta"]
        out.append("")
        mode = vrun.get("mode", "cached")
        target = TARGETS.get(str(v))
        out.append("### %s %% of units remapped (%s remapped units, %d pair(s), %s)"
                   % (v, vrun.get("remapped_units", "?"), len(keys),
                      MODES.get(mode, mode)))
        out.append("")
        out.append("| workload | unit | file median | remap median | ratio remap/file median [min-max] "
                   "| CPU s/GiB file | CPU s/GiB remap | CPU/GiB remap/file median [min-max] | target |")
        out.append("|---|---|--:|--:|--:|--:|--:|--:|---|")
        for n in names:
            ra, fa, ratios, cr, cf, cratio, dropped, flagged = [], [], [], [], [], [], 0, 0
            unit = "?"
            for k in keys:
                p = pairs[k]
                if "remap" not in p or "file" not in p:
                    continue
                rr = next((x for x in p["remap"]["rows"] if x["name"] == n), None)
                fr = next((x for x in p["file"]["rows"] if x["name"] == n), None)
                if rr is None or fr is None:
                    continue
                (xr, unit), (xf, _) = primary(rr), primary(fr)
                ra.append(xr)
                fa.append(xf)
                cr.append(rr.get("srv_cpu_s_per_gib"))
                cf.append(fr.get("srv_cpu_s_per_gib"))
                oth = max(rr.get("other_cores") or 0, fr.get("other_cores") or 0)
                disturbed = oth > a.flag_other
                flagged += disturbed
                if a.max_other is not None and oth > a.max_other:
                    dropped += 1
                    continue
                if xr and xf:
                    ratios.append(xr / xf)
                if rr.get("srv_cpu_s_per_gib") and fr.get("srv_cpu_s_per_gib"):
                    cratio.append(rr["srv_cpu_s_per_gib"] / fr["srv_cpu_s_per_gib"])
            if not ra:
                continue
            rm = med(ratios)
            rs = ("%.2f [%.2f-%.2f]" % (rm, min(ratios), max(ratios))) if ratios else "–"
            if flagged:
                rs += " (%d/%d disturbed%s)" % (flagged, len(ra), ", dropped" if dropped else "")
            cm = med(cratio)
            cs = ("%.2fx [%.2f-%.2f]" % (cm, min(cratio), max(cratio))) if cratio else "–"
            misses = []
            if target is not None and mode == "cached":
                if rm is not None and rm < target:
                    misses.append("throughput < %.2f" % target)
                if cm is not None and cm > CPU_TARGET:
                    misses.append("CPU > %.2fx" % CPU_TARGET)
            elif mode != "cached" and rm is not None and rm <= 1.0:
                misses.append("not above 1.00")
            ts = ("MISS: " + ", ".join(misses)) if misses else "met"
            out.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                n, unit, fmt(med(fa)), fmt(med(ra)), rs,
                fmt(med(cf), 2), fmt(med(cr), 2), cs, ts))
            info[n] = {"unit": unit, "file": fa, "remap": ra, "ratios": ratios,
                       "ratio_median": rm,
                       "ratio_min": min(ratios) if ratios else None,
                       "ratio_max": max(ratios) if ratios else None,
                       "file_median": med(fa), "remap_median": med(ra),
                       "cpu_s_per_gib_file": cf, "cpu_s_per_gib_remap": cr,
                       "cpu_s_per_gib_file_median": med(cf),
                       "cpu_s_per_gib_remap_median": med(cr),
                       "cpu_ratios": cratio, "cpu_ratio_median": med(cratio),
                       "target": target, "misses": misses,
                       "pairs_disturbed": flagged, "pairs_dropped": dropped}
        summary["variants"][v] = info
    text = "\n".join(out).lstrip("\n")
    print(text)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write(text + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("remap-list", "badblocks"):
        p = sub.add_parser(name)
        p.add_argument("--size", type=int, required=True)
        p.add_argument("--unit", type=int, default=4096)
        p.add_argument("--every", type=int, default=100)
    p = sub.add_parser("sample")
    p.add_argument("pid", type=int)
    p.add_argument("file")
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--root", type=int, default=0)
    p = sub.add_parser("run-report")
    p.add_argument("dir")
    p.add_argument("--out", required=True)
    p.add_argument("--trim", type=float, default=0.2)
    p = sub.add_parser("summary")
    p.add_argument("out")
    p.add_argument("--max-other", type=float, default=None,
                   help="drop a pair from a row's ratios if either side saw more foreign CPU (cores)")
    p.add_argument("--flag-other", type=float, default=0.25,
                   help="count a pair as disturbed above this foreign CPU (cores)")
    a = ap.parse_args()
    {"remap-list": cmd_remap_list, "badblocks": cmd_badblocks, "sample": cmd_sample,
     "run-report": cmd_run_report, "summary": cmd_summary}[a.cmd](a)


if __name__ == "__main__":
    main()
