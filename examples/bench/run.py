#!/usr/bin/env python3
"""Switchboard benchmark harness: what the gateway adds, measured against calling the
upstream directly, in the same run, on the same machine, with nginx (and optionally LiteLLM)
as peers.

    make bench                      # full run (release build), prints Markdown tables
    examples/bench/run.py --smoke   # a few seconds per scenario (CI keeps the harness working)

Load comes from wrk (Debian) and examples/src/bin/loadgen.rs (fixed-rate, SSE and MCP modes).
The upstreams are the example servers: `upstream` (plain HTTP, 1 KiB body), `mock-llm`
(OpenAI/Anthropic wire formats) and `mcp-fixture` (MCP over streamable HTTP). Rounds alternate
direct / gateway / peer so that drift on a noisy machine hits all of them alike; tables report
medians of the rounds and ratios computed within each round.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = {}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Procs:
    """Child processes, all killed on exit."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, port=None, **kw):
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        if port:
            wait_port(port, p)
        return p

    def stop(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()

    def close(self):
        for p in reversed(self.procs):
            self.stop(p)


def rss_kb(pid):
    return rss_parts_kb(pid)["VmRSS"]


def rss_parts_kb(pid):
    """`VmRSS` and its parts from `/proc/PID/status`: `RssAnon` (heap, stacks, and the pages of
    the binary written at start-up, e.g. relocated `.data.rel.ro`) and `RssFile` (pages of the
    binary and shared libraries mapped from the page cache: what start-up touched, in the
    kernel's fault-around windows of 64 KiB). VmRSS = RssAnon + RssFile + RssShmem."""
    parts = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in parts:
                parts[key] = int(line.split()[1])
    return parts


def _ticks_and_switches(pid):
    """CPU clock ticks (user + system) and context switches of every thread of `pid`."""
    ticks = switches = 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        switches += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return ticks, switches


def _children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
                pass
    return kids


def usage(pid):
    """(CPU seconds, context switches) used so far by `pid` and its child processes (nginx
    workers). CPU per request is what a proxy costs whatever else the machine is doing, so it
    is reported beside the throughput figures of a noisy machine."""
    hz = os.sysconf("SC_CLK_TCK")
    ticks = switches = 0
    for p in [pid, *_children(pid)]:
        t, s = _ticks_and_switches(p)
        ticks, switches = ticks + t, switches + s
    return ticks / hz, switches


def measured(pid, fn):
    """Runs wrk via `fn` and adds the proxy's CPU µs and context switches per request."""
    if pid is None:
        return fn()
    c0, s0 = usage(pid)
    res = fn()
    c1, s1 = usage(pid)
    n = max(res.get("requests", 0), 1)
    res["cpu_us_per_req"] = (c1 - c0) * 1e6 / n
    res["switches_per_req"] = (s1 - s0) / n
    return res


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def unit_us(value, unit):
    v = float(value)
    return v * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[unit]


def wrk(url, connections, seconds, script=None):
    threads = min(connections, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script:
        cmd[1:1] = ["-s", script]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    res = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        res[f"p{pct}_us"] = unit_us(m.group(1), m.group(2)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return res


def loadgen(bins, *args):
    out = subprocess.run([str(bins / "loadgen"), *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def post_script(tmp, name, body, headers):
    """A wrk Lua script that POSTs `body` with `headers`."""
    body_path = tmp / f"{name}.json"
    body_path.write_text(body)
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    script = tmp / f"{name}.lua"
    script.write_text("\n".join(lines) + "\n")
    return str(script), body_path


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_us(v):
    return "—" if v is None else (f"{v:.0f} µs" if v < 10_000 else f"{v / 1000:.1f} ms")


def fmt_delta(v):
    if v is None:
        return "—"
    return ("+" if v >= 0 else "−") + fmt_us(abs(v))


SHARED = "switchboard, one shared runtime"
BASELINE = "switchboard, baseline binary"


def cpu_cell(runs):
    runs = [x for x in runs if "cpu_us_per_req" in x]
    if not runs:
        return "—"
    return f"{median(x['cpu_us_per_req'] for x in runs):.1f} µs / {median(x['switches_per_req'] for x in runs):.2f}"


def connects_cell(runs):
    """Connections the load generator opened per run (1 when it kept its connection)."""
    runs = [x for x in runs if "connects" in x]
    return "—" if not runs else f"{median(x['connects'] for x in runs):.0f}"


def table(title, header, rows):
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    print("\n".join(lines) + "\n", flush=True)


def chat_body(stream=False, tokens=16):
    # About 1 KiB of JSON, as scenario 1 asks.
    filler = "Summarize the following notes for the on-call engineer. " * 14
    body = {
        "model": "bench",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": filler}],
        "max_tokens": tokens,
    }
    if stream:
        body["stream"] = True
    return json.dumps(body)


def gateway_config(path, port, admin, routes, sessions=None, extra=None):
    cfg = {
        "admin": {"bind": f"127.0.0.1:{admin}"},
        "listeners": [{"name": "bench", "bind": f"127.0.0.1:{port}", "routes": routes}],
    }
    if sessions:
        cfg["sessions"] = sessions
    cfg.update(extra or {})
    # JSON is YAML.
    path.write_text(json.dumps(cfg, indent=1))


# The switchboard binary the scenarios run (`--gateway`; default: the one in target/).
GATEWAY = None


def start_gateway(procs, bins, tmp, routes, name="gw", env=None, extra=None, binary=None):
    port, admin = free_port(), free_port()
    cfg = tmp / f"{name}.yaml"
    gateway_config(cfg, port, admin, routes, extra=extra)
    e = dict(os.environ, RUST_LOG="warn")
    e.update(env or {})
    p = procs.start([str(binary or GATEWAY or bins / "switchboard"), "run", "-c", str(cfg)], port=port, env=e)
    wait_port(admin, p)
    return p, port, admin, cfg


def start_nginx(procs, tmp, upstream_port, access_log="off", name="nginx"):
    """nginx as a peer; `access_log` is its `access_log` directive's argument."""
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        log("nginx not installed: peer skipped")
        return None, None
    port = free_port()
    d = tmp / name
    (d / "logs").mkdir(parents=True, exist_ok=True)
    conf = d / "nginx.conf"
    conf.write_text(f"""
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log {access_log};
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  upstream up {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = procs.start([nginx, "-p", str(d), "-c", str(conf), "-g", "daemon off;"], port=port)
    return p, port


def scenario_http(args, procs, bins, tmp):
    """Plain reverse proxy of a 1 KiB body: the gateway's floor, against nginx."""
    up = free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    route = [{"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}}]
    gw, gport, _, _ = start_gateway(procs, bins, tmp, route, "http")
    nginx, nport = start_nginx(procs, tmp, up)
    targets = {"direct": up, "switchboard": gport}
    pids = {"direct": None, "switchboard": gw.pid}
    if args.compare_runtime:
        old, oport, _, _ = start_gateway(procs, bins, tmp, route, "http-shared", env={"SWITCHBOARD_WORKERS": "0"})
        targets[SHARED], pids[SHARED] = oport, old.pid
    if args.baseline:
        # Another build of the gateway (e.g. the commit before a change), same config.
        base, bport, _, _ = start_gateway(procs, bins, tmp, route, "http-baseline", binary=args.baseline)
        targets[BASELINE], pids[BASELINE] = bport, base.pid
    if args.tracing:
        # Every request traced (sampling 1) and exported over OTLP/HTTP to a port nobody
        # listens on: the cost of building, propagating and queueing spans.
        extra = {"tracing": {"otlp": {"endpoint": f"http://127.0.0.1:{free_port()}", "protocol": "http/protobuf"}, "sampling": 1.0}}
        tr, tport, _, _ = start_gateway(procs, bins, tmp, route, "http-tracing", extra=extra)
        targets["switchboard, tracing on"], pids["switchboard, tracing on"] = tport, tr.pid
        extra0 = {"tracing": {"otlp": {"endpoint": f"http://127.0.0.1:{free_port()}"}, "sampling": 0.0}}
        t0, t0port, _, _ = start_gateway(procs, bins, tmp, route, "http-tracing0", extra=extra0)
        targets["switchboard, tracing sampling 0"], pids["switchboard, tracing sampling 0"] = t0port, t0.pid
    if nport:
        targets["nginx"], pids["nginx"] = nport, nginx.pid
    rounds = {k: {"c1": [], "c32": []} for k in targets}
    for _ in range(args.rounds):
        for name, port in targets.items():
            url = f"http://127.0.0.1:{port}/fixed"
            rounds[name]["c1"].append(wrk(url, 1, args.seconds))
            rounds[name]["c32"].append(measured(pids[name], lambda: wrk(url, 32, args.seconds)))
    d = rounds["direct"]
    rows = []
    for name in targets:
        r = rounds[name]
        p50 = median(x["p50_us"] for x in r["c1"])
        p99 = median(x["p99_us"] for x in r["c1"])
        rps = median(x["rps"] for x in r["c32"])
        ratio = median(a["rps"] / b["rps"] for a, b in zip(r["c32"], d["c32"]))
        add50 = median(a["p50_us"] - b["p50_us"] for a, b in zip(r["c1"], d["c1"]))
        add99 = median(a["p99_us"] - b["p99_us"] for a, b in zip(r["c1"], d["c1"]))
        rows.append([name, fmt_us(p50), fmt_us(p99), "—" if name == "direct" else f"{fmt_delta(add50)} / {fmt_delta(add99)}",
                     f"{rps:,.0f}", f"{ratio:.2f}", cpu_cell(r["c32"])])
    table("HTTP reverse proxy, 1 KiB body (wrk)", ["target", "p50 @1 conn", "p99 @1 conn", "added p50 / p99", "req/s @32 conns", "of direct",
          "proxy CPU / switches per req @32"], rows)
    RESULTS["http"] = rounds
    rss = rss_kb(gw.pid)
    RESULTS["http_rss_after_load_kb"] = rss
    return gw


def metric_value(admin, name):
    text = http_get(f"http://127.0.0.1:{admin}/metrics").decode()
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def scenario_access_log(args, procs, bins, tmp):
    """The access log's cost: the plain proxy with one line per request written to a file,
    against the same gateway with it off, and nginx with its access log on and off."""
    up = free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    route = [{"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}}]
    # RUST_LOG=warn: the access log on stderr (the default) is off.
    off, off_port, _, _ = start_gateway(procs, bins, tmp, route, "al-off")
    sb_file = tmp / "switchboard-access.log"
    on, on_port, on_admin, _ = start_gateway(procs, bins, tmp, route, "al-on",
                                             extra={"access_log": {"to": str(sb_file), "format": "text"}})
    targets = {"direct": (up, None), "switchboard, access log off": (off_port, off.pid),
               "switchboard, access log to a file": (on_port, on.pid)}
    b_off = base_on = None
    if args.baseline:
        b_off, b_off_port, _, _ = start_gateway(procs, bins, tmp, route, "al-base-off", binary=args.baseline)
        base_file = tmp / "baseline-access.log"
        base_on, b_on_port, _, _ = start_gateway(procs, bins, tmp, route, "al-base-on", binary=args.baseline,
                                                 extra={"access_log": {"to": str(base_file), "format": "text"}})
        targets[f"{BASELINE}, access log off"] = (b_off_port, b_off.pid)
        targets[f"{BASELINE}, access log to a file"] = (b_on_port, base_on.pid)
    ng_file = tmp / "nginx-access.log"
    ng_off, ng_off_port = start_nginx(procs, tmp, up, "off", "nginx-al-off")
    ng_on, ng_on_port = start_nginx(procs, tmp, up, f"{ng_file} combined", "nginx-al-on")
    if ng_off_port:
        targets["nginx, access log off"] = (ng_off_port, ng_off.pid)
        targets["nginx, access log to a file"] = (ng_on_port, ng_on.pid)
    rounds = {k: {"c1": [], "c32": []} for k in targets}
    for _ in range(args.rounds):
        for name, (port, pid) in targets.items():
            url = f"http://127.0.0.1:{port}/fixed"
            rounds[name]["c1"].append(wrk(url, 1, args.seconds))
            rounds[name]["c32"].append(measured(pid, lambda: wrk(url, 32, args.seconds)))
    time.sleep(1.5)  # the gateway writes its batch within flush_interval (1s)
    served = {name: sum(x["requests"] for x in r["c1"] + r["c32"]) for name, r in rounds.items()}
    sb_on = "switchboard, access log to a file"
    written = {sb_on: count_lines(sb_file), "nginx, access log to a file": count_lines(ng_file)}
    dropped = metric_value(on_admin, "switchboard_access_log_dropped_total")
    pairs = {sb_on: "switchboard, access log off", "nginx, access log to a file": "nginx, access log off"}
    if base_on is not None:
        pairs[f"{BASELINE}, access log to a file"] = f"{BASELINE}, access log off"
    d = rounds["direct"]
    rows = []
    for name in targets:
        r = rounds[name]
        rps = median(x["rps"] for x in r["c32"])
        ratio = median(a["rps"] / b["rps"] for a, b in zip(r["c32"], d["c32"]))
        add50 = median(a["p50_us"] - b["p50_us"] for a, b in zip(r["c1"], d["c1"]))
        if name in pairs:
            base = rounds[pairs[name]]
            on_off = f"{median(a['rps'] / b['rps'] for a, b in zip(r['c32'], base['c32'])):.2f}"
        else:
            on_off = "—"
        lines = "—"
        if name in written:
            lines = f"{written[name]:,} of {served[name]:,}"
            if name == sb_on:
                lines += f" ({dropped:,.0f} dropped)"
        rows.append([name, "—" if name == "direct" else fmt_delta(add50), f"{rps:,.0f}", f"{ratio:.2f}", on_off,
                     cpu_cell(r["c32"]), lines])
    table("Access log on and off, HTTP 1 KiB body (wrk)", ["target", "added p50 @1 conn", "req/s @32 conns", "of direct",
          "log on / log off (req/s)", "proxy CPU / switches per req @32", "lines written"], rows)
    RESULTS["access_log"] = {"rounds": rounds, "served": served, "written": written, "dropped": dropped}
    for p in (off, on, ng_off, ng_on, b_off, base_on):
        if p is not None:
            procs.stop(p)


def scenario_config_swap(args, procs, bins, tmp):
    """5,000 routes swapped in under load, with no failed request."""
    up = free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    routes = [{"name": "live", "match": {"path_prefix": "/fixed"}, "http": {"url": f"http://127.0.0.1:{up}"}}]
    gw, gport, admin, cfg = start_gateway(procs, bins, tmp, routes, "swap")
    n = args.routes
    many = routes + [
        {"name": f"r{i}", "match": {"path_prefix": f"/svc/{i}"}, "http": {"url": f"http://127.0.0.1:{up}/fixed"}}
        for i in range(n)
    ]
    big = tmp / "many.yaml"
    gateway_config(big, gport, admin, many)
    t0 = time.perf_counter()
    subprocess.run([str(GATEWAY or bins / "switchboard"), "validate", str(big)], check=True, capture_output=True)
    validate_s = time.perf_counter() - t0
    load = subprocess.Popen(["wrk", "-t2", "-c16", f"-d{max(3, args.seconds * 2)}s", "--latency", f"http://127.0.0.1:{gport}/fixed"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    t0 = time.perf_counter()
    os.replace(big, cfg)
    version = 1
    while version < 2 and time.perf_counter() - t0 < 30:
        version = json.loads(http_get(f"http://127.0.0.1:{admin}/config"))["version"]
        if version < 2:
            time.sleep(0.002)
    swap_s = time.perf_counter() - t0
    out = load.communicate()[0]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    failed = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(x) for x in errs.groups()) if errs else 0)
    served = re.search(r"(\d+) requests in", out).group(1)
    # The new routes answer.
    ok = urllib.request.urlopen(f"http://127.0.0.1:{gport}/svc/{n - 1}", timeout=5).status == 200
    table(f"Config swap: {n} routes under load", ["validate (CLI, whole process)", "file write → serving (watch + parse + validate + build + swap)", "requests during swap", "failed", "new routes serve"],
          [[f"{validate_s * 1000:.0f} ms", f"{swap_s * 1000:.0f} ms", served, failed, "yes" if ok else "no"]])
    RESULTS["config_swap"] = {"routes": n, "validate_s": validate_s, "swap_s": swap_s, "failed": failed}
    procs.stop(gw)


def scenario_memory(args, procs, bins, tmp):
    """Gateway RSS at idle (VmRSS, and its anonymous and file-backed parts), then under load.
    With --baseline, the baseline binary's idle RSS too, measured the same way."""
    up = free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    route = [{"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}}]
    binaries = {"switchboard": None}
    if args.baseline:
        binaries[BASELINE] = args.baseline
    idle_rows, idle = [], {}
    for name, binary in binaries.items():
        # Started once before the measured start, so that every binary's pages are in the
        # page cache alike (RssFile counts the mapped pages that were cached at fault time).
        warm, _, _, _ = start_gateway(procs, bins, tmp, route, "mem-warm", binary=binary)
        procs.stop(warm)
        gw, gport, _, _ = start_gateway(procs, bins, tmp, route, "mem", binary=binary)
        time.sleep(0.5)
        parts = rss_parts_kb(gw.pid)
        idle[name] = parts
        idle_rows.append([name, *(f"{parts[k] / 1024:.1f} MB" for k in ("VmRSS", "RssAnon", "RssFile"))])
        if name != "switchboard":
            procs.stop(gw)
            continue
        main_gw, main_port = gw, gport
    table("Memory at idle (0.5 s after start)", ["binary", "RSS (VmRSS)", "anonymous (RssAnon)", "file-backed (RssFile)"], idle_rows)
    load = subprocess.Popen(["wrk", "-t2", "-c32", f"-d{args.seconds * 2}s", f"http://127.0.0.1:{main_port}/fixed"], stdout=subprocess.DEVNULL)
    samples = []
    while load.poll() is None:
        samples.append(rss_kb(main_gw.pid))
        time.sleep(0.25)
    after = rss_kb(main_gw.pid)
    first = idle["switchboard"]["VmRSS"]
    table("Memory (RSS)", ["idle", "under 32-connection load (max)", "after load"],
          [[f"{first / 1024:.1f} MB", f"{max(samples or [0]) / 1024:.1f} MB", f"{after / 1024:.1f} MB"]])
    RESULTS["memory"] = {"idle_kb": first, "idle_parts_kb": idle, "load_max_kb": max(samples or [0]), "after_kb": after}
    procs.stop(main_gw)


def llm_route(mock_port):
    return {"name": "llm", "match": {"path_prefix": "/v1"}, "llm": {"models": [
        {"name": "bench", "providers": [{"provider": "openai", "model": "mock-gpt", "api_key": "bench-key",
                                         "base_url": f"http://127.0.0.1:{mock_port}/v1"}]}]}}


def start_litellm(procs, tmp, mock_port):
    """LiteLLM proxy (pinned) in its own venv, pointed at the same mock provider. Pinned to
    1.80.17: the `proxy` extra of later releases (1.110.x) needs a `litellm-proxy` package that
    the registry does not serve."""
    venv = ROOT / "examples" / "bench" / ".venv-litellm"
    if not (venv / "bin" / "litellm").exists():
        log("installing litellm[proxy]==1.80.17 (once)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "litellm[proxy]==1.80.17"], check=True)
    port = free_port()
    cfg = tmp / "litellm.yaml"
    cfg.write_text(json.dumps({"model_list": [{"model_name": "bench", "litellm_params": {
        "model": "openai/mock-gpt", "api_base": f"http://127.0.0.1:{mock_port}/v1", "api_key": "bench-key"}}],
        "litellm_settings": {"telemetry": False}}))
    env = dict(os.environ, LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False")
    p = procs.start([str(venv / "bin" / "litellm"), "--config", str(cfg), "--port", str(port), "--host", "127.0.0.1",
                     "--num_workers", "1"], env=env)
    wait_port(port, p, timeout=180)
    return p, port


def count_events(url, body):
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json",
                                                                   "authorization": "Bearer client-key"})
    with urllib.request.urlopen(req, timeout=30) as r:
        text = r.read().decode()
    return sum(1 for line in text.splitlines() if line.startswith("data:") and not line.endswith("[DONE]"))


def scenario_llm(args, procs, bins, tmp):
    """Scenarios 1-3: chat completions non-streaming, streaming, and translation."""
    mock = free_port()
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    gw, gport, _, _ = start_gateway(procs, bins, tmp, [llm_route(mock)], "llm")
    nginx, nport = start_nginx(procs, tmp, mock)
    peers = {"direct": mock, "switchboard": gport}
    pids = {"direct": None, "switchboard": gw.pid}
    if args.compare_runtime:
        old, oport, _, _ = start_gateway(procs, bins, tmp, [llm_route(mock)], "llm-shared", env={"SWITCHBOARD_WORKERS": "0"})
        peers[SHARED], pids[SHARED] = oport, old.pid
    if args.baseline:
        base, bport, _, _ = start_gateway(procs, bins, tmp, [llm_route(mock)], "llm-baseline", binary=args.baseline)
        peers[BASELINE], pids[BASELINE] = bport, base.pid
    if nport:
        peers["nginx"], pids["nginx"] = nport, nginx.pid
    if args.litellm:
        lp, lport = start_litellm(procs, tmp, mock)
        peers["litellm"], pids["litellm"] = lport, lp.pid
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer client-key"}
    script, body_file = post_script(tmp, "chat", chat_body(), hdr)

    # 1. Non-streaming chat completion, ~1 KiB request.
    rounds = {k: {"c1": [], "c32": []} for k in peers}
    for _ in range(args.rounds):
        for name, port in peers.items():
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            rounds[name]["c1"].append(wrk(url, 1, args.seconds, script))
            if name != "litellm" or not args.smoke:
                rounds[name]["c32"].append(measured(pids[name], lambda: wrk(url, 32, args.seconds, script)))
    d = rounds["direct"]
    # Open-loop latency at a quarter and at half of the gateway's own maximum (LiteLLM: of
    # its own). The load generator shares the two cores, so half is already close to what
    # this machine can drive through any proxy.
    gw_max = median(x["rps"] for x in rounds["switchboard"]["c32"])
    fixed = {}
    for name, port in peers.items():
        own = gw_max if name != "litellm" else median(x["rps"] for x in rounds["litellm"]["c32"] or [{"rps": 20}])
        fixed[name] = [loadgen(bins, "rate", "--url", f"http://127.0.0.1:{port}/v1/chat/completions", "--method", "POST",
                               "--body-file", str(body_file), "--header", "content-type: application/json",
                               "--header", "authorization: Bearer client-key", "--rps", str(max(10, int(own * share))),
                               "--duration", str(args.seconds)) for share in (0.25, 0.5)]
    rows = []
    for name in peers:
        r = rounds[name]
        add50 = median(a["p50_us"] - b["p50_us"] for a, b in zip(r["c1"], d["c1"]))
        add99 = median(a["p99_us"] - b["p99_us"] for a, b in zip(r["c1"], d["c1"]))
        ratio = median(a["rps"] / b["rps"] for a, b in zip(r["c32"], d["c32"])) if r["c32"] else None
        f = fixed[name]
        rows.append([name, fmt_us(median(x["p50_us"] for x in r["c1"])), fmt_us(median(x["p99_us"] for x in r["c1"])),
                     "—" if name == "direct" else f"{fmt_delta(add50)} / {fmt_delta(add99)}",
                     f"{median(x['rps'] for x in r['c32']):,.0f}" if r["c32"] else "—",
                     f"{ratio:.3f}" if ratio else "—",
                     " · ".join(f"{fmt_us(x['latency']['p99_us'] if x['latency'] else None)} @ {x['rps']}/s ({x['errors']} err)" for x in f),
                     cpu_cell(r["c32"])])
    table("1. LLM chat completion, non-streaming, ~1 KiB request", ["target", "p50 @1 conn", "p99 @1 conn", "added p50 / p99",
          "req/s @32 conns", "of direct", "p99 at ¼ · ½ of the gateway's max rate", "proxy CPU / switches per req @32"], rows)
    for name, runs in fixed.items():
        for x in runs:
            if x["errors"]:
                log(f"{name} at {x['rps']}/s: {x['errors']} errors: {x.get('error_kinds')}")
    RESULTS["llm_chat"] = {"rounds": rounds, "fixed": fixed}

    # 2. Streaming, 100 chunks.
    sbody = json.dumps({"model": "bench", "stream": True, "max_tokens": 200,
                        "messages": [{"role": "user", "content": "[words=100] stream please"}]})
    sfile = tmp / "stream.json"
    sfile.write_text(sbody)
    expect = count_events(f"http://127.0.0.1:{mock}/v1/chat/completions", sbody)
    n1 = 20 if args.smoke else 300
    conc, total = (32, 64) if args.smoke else (512, 2048)
    srows = []
    RESULTS["llm_stream"] = {}
    # Single-stream latency: alternating rounds, added figures are medians of per-round
    # differences (one stream at a time is what noise on a shared machine hits hardest).
    ones = {name: [] for name in peers}
    for _ in range(args.rounds):
        for name, port in peers.items():
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            common = ["--url", url, "--method", "POST", "--body-file", str(sfile), "--header", "content-type: application/json",
                      "--header", "authorization: Bearer client-key", "--expect-events", str(expect)]
            ones[name].append(loadgen(bins, "stream", *common, "--concurrency", "1", "--requests", str(n1)))
    for name, port in peers.items():
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        common = ["--url", url, "--method", "POST", "--body-file", str(sfile), "--header", "content-type: application/json",
                  "--header", "authorization: Bearer client-key", "--expect-events", str(expect)]
        many = loadgen(bins, "stream", *common, "--concurrency", str(conc), "--requests", str(total))
        RESULTS["llm_stream"][name] = {"one": ones[name], "many": many}
        runs = [o for o in ones[name] if o["ttft"]]
        pairs = [(o, b) for o, b in zip(ones[name], ones["direct"]) if o["ttft"] and b["ttft"]]
        ttft50 = median(o["ttft"]["p50_us"] for o in runs) if runs else None
        ttft99 = median(o["ttft"]["p99_us"] for o in runs) if runs else None
        ttlt50 = median(o["ttlt"]["p50_us"] for o in runs) if runs else None
        add_ttft = median(o["ttft"]["p99_us"] - b["ttft"]["p99_us"] for o, b in pairs) if pairs else None
        add_ttft50 = median(o["ttft"]["p50_us"] - b["ttft"]["p50_us"] for o, b in pairs) if pairs else None
        add_ttlt = median(o["ttlt"]["p50_us"] - b["ttlt"]["p50_us"] for o, b in pairs) if pairs else None
        srows.append([name, fmt_us(ttft50), fmt_us(ttft99),
                      "—" if name == "direct" else f"{fmt_delta(add_ttft50)} / {fmt_delta(add_ttft)}",
                      fmt_us(ttlt50), "—" if name == "direct" else fmt_delta(add_ttlt),
                      f"{many['streams'] - len(many['errors'])}/{many['streams']} ok, {many['lost_events']} lost",
                      fmt_us(many["ttlt"]["p99_us"] if many["ttlt"] else None)])
    table(f"2. LLM streaming, {expect} events per stream", ["target", "TTFT p50", "TTFT p99", "added TTFT p50 / p99", "TTLT p50",
          "added TTLT p50", f"{conc} concurrent ({total} streams)", "TTLT p99 under concurrency"], srows)

    # 3. Anthropic in, OpenAI out, against OpenAI passthrough, on the gateway.
    abody = json.dumps({"model": "bench", "max_tokens": 16, "system": "You are terse.",
                        "messages": [{"role": "user", "content": "Summarize the following notes for the on-call engineer. " * 14}]})
    ascript, _ = post_script(tmp, "messages", abody, {"Content-Type": "application/json", "x-api-key": "client-key",
                                                      "anthropic-version": "2023-06-01"})
    tr = {"passthrough": [], "translated": []}
    for _ in range(args.rounds):
        tr["passthrough"].append(wrk(f"http://127.0.0.1:{gport}/v1/chat/completions", 32, args.seconds, script))
        tr["translated"].append(wrk(f"http://127.0.0.1:{gport}/v1/messages", 32, args.seconds, ascript))
    ratio = median(a["rps"] / b["rps"] for a, b in zip(tr["passthrough"], tr["translated"]))
    table("3. Anthropic-in/OpenAI-out translation vs OpenAI passthrough (gateway, 32 conns)",
          ["passthrough req/s", "translated req/s", "passthrough / translated", "translated p50", "passthrough p50"],
          [[f"{median(x['rps'] for x in tr['passthrough']):,.0f}", f"{median(x['rps'] for x in tr['translated']):,.0f}",
            f"{ratio:.2f}×", fmt_us(median(x['p50_us'] for x in tr['translated'])), fmt_us(median(x['p50_us'] for x in tr['passthrough']))]])
    RESULTS["translation"] = tr
    RESULTS["llm_rss_after_load_kb"] = rss_kb(gw.pid)


def start_redis(procs, tmp, name, cluster=False):
    """A redis-server on a free loopback port (no persistence); for a cluster node, with
    cluster mode on (the bus port is port + 10000)."""
    port = free_port()
    while cluster and port + 10000 > 65535:
        port = free_port()
    d = tmp / f"{name}-{port}"
    d.mkdir()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(d)]
    if cluster:
        cmd += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    procs.start(cmd, port=port)
    return port


def start_redis_cluster(procs, tmp):
    """3 masters, 3 replicas; returns the seed URLs once every node reports cluster_state:ok."""
    ports = [start_redis(procs, tmp, "cluster", cluster=True) for _ in range(6)]
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", "1", "--cluster-yes"], check=True, capture_output=True)
    deadline = time.time() + 30
    while not all("cluster_state:ok" in subprocess.run(["redis-cli", "-p", str(p), "cluster", "info"],
                                                      capture_output=True, text=True).stdout for p in ports):
        if time.time() > deadline:
            raise RuntimeError("redis cluster not ok after 30s")
        time.sleep(0.1)
    return [f"redis://127.0.0.1:{p}" for p in ports]


def scenario_limits(args, procs, bins, tmp):
    """Scenario: the LLM route's added latency with a request and token limit kept locally, in
    one Redis, and in a Redis Cluster (every request runs the limit's scripts in Redis)."""
    if not shutil.which("redis-server"):
        log("limits: redis-server not installed, skipped")
        return
    mock = free_port()
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    route = dict(llm_route(mock), policies={"rate_limit": {"requests": 10**9, "tokens": 10**12, "per": "1h"}})
    standalone = start_redis(procs, tmp, "standalone")
    seeds = start_redis_cluster(procs, tmp)
    stores = {
        "no limit": (None, [llm_route(mock)]),
        "local": (None, [route]),
        "redis": ({"store": "redis", "redis": {"url": f"redis://127.0.0.1:{standalone}"}}, [route]),
        "redis cluster": ({"store": "redis", "redis": {"cluster": seeds}}, [route]),
    }
    ports = {}
    for name, (sessions, routes) in stores.items():
        extra = {"sessions": sessions} if sessions else None
        _, ports[name], _, _ = start_gateway(procs, bins, tmp, routes, "limits-" + name.replace(" ", "-"), extra=extra)
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer client-key"}
    script, _ = post_script(tmp, "limits-chat", chat_body(), hdr)
    rounds = {k: [] for k in ports}
    for _ in range(args.rounds):
        for name, port in ports.items():
            rounds[name].append(wrk(f"http://127.0.0.1:{port}/v1/chat/completions", 1, args.seconds, script))
    base = rounds["no limit"]
    rows = []
    for name, r in rounds.items():
        add50 = median(a["p50_us"] - b["p50_us"] for a, b in zip(r, base))
        add99 = median(a["p99_us"] - b["p99_us"] for a, b in zip(r, base))
        rows.append([name, fmt_us(median(x["p50_us"] for x in r)), fmt_us(median(x["p99_us"] for x in r)),
                     "—" if name == "no limit" else f"{fmt_delta(add50)} / {fmt_delta(add99)}",
                     str(sum(x["non_2xx"] for x in r))])
    table("LLM route with a request + token limit: local, one Redis, Redis Cluster (1 conn)",
          ["limits kept", "p50", "p99", "added p50 / p99 vs no limit", "non-2xx"], rows)
    RESULTS["limits"] = rounds


def start_fixture(procs, bins, threads=None):
    """An MCP fixture server; `threads` sets its tokio runtime's worker threads (default: one
    per core)."""
    port = free_port()
    env = dict(os.environ, TOKIO_WORKER_THREADS=str(threads)) if threads else None
    procs.start([str(bins / "mcp-fixture"), "--port", str(port)], port=port, env=env)
    return f"http://127.0.0.1:{port}/mcp"


MCP_HEADERS = ["--header", "content-type: application/json", "--header", "accept: application/json, text/event-stream"]


def mcp_call_body(tmp, tool):
    f = tmp / f"call-{tool}.json"
    f.write_text(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": {}}}))
    return f


def scenario_mcp(args, procs, bins, tmp):
    """4. MCP tools/call through the gateway with 1 and 3 federated targets vs the target."""
    fixtures = [start_fixture(procs, bins) for _ in range(3)]
    # The one-connection runs (latency) go to a fixture of its own with one runtime thread, the
    # same fixture direct and through the gateway. With a thread per core, the fixture's work
    # stealing leaves the tasks that serve the gateway's long-lived upstream connection and its
    # sessions on different threads after a burst of other traffic (the 32-connection runs),
    # so each call through the gateway paid the fixture's cross-thread wake-ups, while
    # loadgen's fresh direct connection did not: +100 to +130 µs "added" where the gateway's
    # own share was +50 to +60 µs (BENCHMARKS.md, "MCP at one connection: the fixture's
    # threads"). Throughput (32 connections) stays on the fixtures with a thread per core.
    lone = start_fixture(procs, bins, threads=1)
    routes = [
        {"name": "one", "match": {"path_prefix": "/one"}, "mcp": {"targets": [{"name": "f0", "http": {"url": fixtures[0]}}]}},
        {"name": "three", "match": {"path_prefix": "/three"}, "mcp": {"targets": [
            {"name": f"f{i}", "http": {"url": u}} for i, u in enumerate(fixtures)]}},
        {"name": "one-lone", "match": {"path_prefix": "/lone/one"}, "mcp": {"targets": [{"name": "f0", "http": {"url": lone}}]}},
        {"name": "three-lone", "match": {"path_prefix": "/lone/three"}, "mcp": {"targets": [
            {"name": f"f{i}", "http": {"url": u}} for i, u in enumerate([lone, *fixtures[1:]])]}},
    ]
    gw, gport, _, _ = start_gateway(procs, bins, tmp, routes, "mcp")
    # name: (URL at one connection, URL at 32 connections, tool, gateway pid)
    cases = {
        "direct": (lone, fixtures[0], "test_simple_text", None),
        "switchboard, 1 target": (f"http://127.0.0.1:{gport}/lone/one", f"http://127.0.0.1:{gport}/one", "test_simple_text",
                                  gw.pid),
        "switchboard, 3 targets": (f"http://127.0.0.1:{gport}/lone/three", f"http://127.0.0.1:{gport}/three",
                                   "f0__test_simple_text", gw.pid),
    }
    if args.baseline:
        # Another build of the gateway (e.g. the commit before a change), same config.
        base, bport, _, _ = start_gateway(procs, bins, tmp, routes, "mcp-baseline", binary=args.baseline)
        cases["switchboard, 1 target, baseline binary"] = (f"http://127.0.0.1:{bport}/lone/one",
                                                            f"http://127.0.0.1:{bport}/one", "test_simple_text", base.pid)
        cases["switchboard, 3 targets, baseline binary"] = (f"http://127.0.0.1:{bport}/lone/three",
                                                             f"http://127.0.0.1:{bport}/three", "f0__test_simple_text",
                                                             base.pid)

    def calls(pid, *a):
        # loadgen reports calls/s over the run's duration, not a count.
        def run():
            r = loadgen(bins, "latency", *a)
            r["requests"] = round(r["rps"] * args.seconds)
            return r
        return measured(pid, run)

    res = {k: {"c1": [], "c32": []} for k in cases}
    for _ in range(args.rounds):
        for name, (url1, url32, tool, pid) in cases.items():
            body = mcp_call_body(tmp, tool)
            for key, url, conns in (("c1", url1, "1"), ("c32", url32, "32")):
                res[name][key].append(calls(pid, "--url", url, "--method", "POST", "--body-file", str(body), *MCP_HEADERS,
                                            "--mcp-init", url, "--duration", str(args.seconds), "--connections", conns))
    d = res["direct"]
    rows = []
    for name in cases:
        r = res[name]
        p50 = median(x["latency"]["p50_us"] for x in r["c1"])
        p99 = median(x["latency"]["p99_us"] for x in r["c1"])
        add50 = median(a["latency"]["p50_us"] - b["latency"]["p50_us"] for a, b in zip(r["c1"], d["c1"]))
        ratio = median(a["rps"] / b["rps"] for a, b in zip(r["c32"], d["c32"]))
        errors = sum(x["errors"] for x in r["c1"] + r["c32"])
        rows.append([name, fmt_us(p50), fmt_us(p99), "—" if name == "direct" else fmt_delta(add50),
                     f"{median(x['rps'] for x in r['c32']):,.0f}", f"{ratio:.2f}", cpu_cell(r["c1"]), cpu_cell(r["c32"]),
                     connects_cell(r["c1"]), errors])
    table("4. MCP tools/call (streamable HTTP, loadgen; @1 conn: a one-thread fixture)", ["target", "p50 @1 conn",
          "p99 @1 conn", "added p50",
          "calls/s @32 conns", "of direct", "proxy CPU / switches per call @1", "@32", "connections per run @1",
          "errors"], rows)
    RESULTS["mcp"] = res

    # 5 (part). RSS with many idle MCP sessions on the 1-target route.
    before = rss_kb(gw.pid)
    holder = subprocess.Popen([str(bins / "loadgen"), "mcp-sessions", "--url", f"http://127.0.0.1:{gport}/one",
                               "--count", str(args.sessions)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    opened = json.loads(holder.stdout.readline())
    time.sleep(1)
    after = rss_kb(gw.pid)
    holder.stdin.close()
    holder.wait(30)
    per = (after - before) * 1024 / max(1, opened["opened"])
    table(f"5. Memory with {opened['opened']} idle MCP sessions (1 HTTP target)", ["RSS before", "RSS with sessions", "per session", "errors"],
          [[f"{before / 1024:.1f} MB", f"{after / 1024:.1f} MB", f"{per / 1024:.1f} KB", len(opened["errors"])]])
    RESULTS["mcp_sessions"] = {"before_kb": before, "after_kb": after, "opened": opened, "per_session_bytes": per}
    procs.stop(gw)
    if args.baseline:
        procs.stop(base)

# Ten rules: the nine built-in detectors and one regex rule, masking.
GUARD_DETECTORS = ["email", "phone", "credit_card", "iban", "us_ssn", "aws_key", "github_token", "openai_key",
                   "private_key"]


def guardrail_policy(applies_to):
    rules = [{"detector": d, "action": "mask", "applies_to": applies_to} for d in GUARD_DETECTORS]
    rules.append({"name": "ticket", "regex": r"TICKET-[0-9]{6}", "action": "mask", "applies_to": applies_to})
    return {"guardrails": {"rules": rules}}


def scenario_guardrails(args, procs, bins, tmp):
    """The LLM route with a ten-rule guardrail policy (nine detectors and a regex, mask) against
    the same route without it: added p50 at one connection (non-streaming, ~1 KiB prompt with no
    match, answer scanned too) and added time to first token of a stream with a ~1 KiB prompt.
    `guarded` checks both directions; `guarded, request only` leaves streamed answers alone
    (no hold window), which separates the cost of checking the prompt from the held tail."""
    mock = free_port()
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    variants = {"no guardrails": None, "guarded": ["request", "response"], "guarded, request only": ["request"]}
    peers = {}
    for i, (name, applies) in enumerate(variants.items()):
        route = llm_route(mock)
        if applies:
            route["policies"] = guardrail_policy(applies)
        _, port, _, _ = start_gateway(procs, bins, tmp, [route], f"guard{i}")
        peers[name] = port
    hdr = {"Content-Type": "application/json", "Authorization": "Bearer client-key"}
    script, _ = post_script(tmp, "guard-chat", chat_body(), hdr)
    filler = "Summarize the following notes for the on-call engineer. " * 17
    sbody = json.dumps({"model": "bench", "stream": True, "max_tokens": 200,
                        "messages": [{"role": "user", "content": "[words=100] " + filler}]})
    sfile = tmp / "guard-stream.json"
    sfile.write_text(sbody)
    expect = count_events(f"http://127.0.0.1:{mock}/v1/chat/completions", sbody)
    n1 = 20 if args.smoke else 300
    c1 = {k: [] for k in peers}
    ones = {k: [] for k in peers}
    for _ in range(args.rounds):
        for name, port in peers.items():
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            r = wrk(url, 1, args.seconds, script)
            if r["non_2xx"] or r["socket_errors"]:
                sys.exit(f"guardrails scenario: {name} answered errors: {r}")
            c1[name].append(r)
            ones[name].append(loadgen(bins, "stream", "--url", url, "--method", "POST", "--body-file", str(sfile),
                                      "--header", "content-type: application/json",
                                      "--header", "authorization: Bearer client-key", "--expect-events", str(expect),
                                      "--concurrency", "1", "--requests", str(n1)))
    base = "no guardrails"
    rows = []
    for name in peers:
        add50 = median(a["p50_us"] - b["p50_us"] for a, b in zip(c1[name], c1[base]))
        pairs = [(o, b) for o, b in zip(ones[name], ones[base]) if o["ttft"] and b["ttft"]]
        runs = [o for o in ones[name] if o["ttft"]]
        ttft50 = median(o["ttft"]["p50_us"] for o in runs) if runs else None
        add_ttft = median(o["ttft"]["p50_us"] - b["ttft"]["p50_us"] for o, b in pairs) if pairs else None
        add_ttlt = median(o["ttlt"]["p50_us"] - b["ttlt"]["p50_us"] for o, b in pairs) if pairs else None
        errs = sum(len(o["errors"]) + o["lost_events"] for o in ones[name])
        rows.append([name, fmt_us(median(x["p50_us"] for x in c1[name])), "—" if name == base else fmt_delta(add50),
                     fmt_us(ttft50), "—" if name == base else fmt_delta(add_ttft),
                     "—" if name == base else fmt_delta(add_ttlt), f"{errs}"])
    table(f"Guardrails: LLM route, ten mask rules, ~1 KiB prompt without a match ({expect}-event streams)",
          ["gateway", "p50 @1 conn", "added p50", "TTFT p50", "added TTFT p50", "added TTLT p50", "stream errors"], rows)
    RESULTS["guardrails"] = {"c1": c1, "stream": ones}


def varying_script(tmp, name, key, nonce=None):
    """A wrk Lua script that POSTs the ~1 KiB chat body with `Bearer key`. With `nonce`, every
    request's prompt differs (nonce, wrk thread, counter), so a response cache is looked up and
    misses; without, every request is the same (a cache hits). Both build the request in Lua,
    so the load generator's own cost is the same either way."""
    body = json.loads(chat_body())
    body["messages"][1]["content"] = "@@" + body["messages"][1]["content"]
    head, tail = json.dumps(body).split("@@")
    tag = f'"{nonce}-" .. id .. "-" .. n .. ". "' if nonce else '""'
    script = tmp / f"{name}.lua"
    script.write_text(f"""wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
local head, tail = {json.dumps(head)}, {json.dumps(tail)}
local threads = 0
id, n = 0, 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, head .. {tag} .. tail)
end
""")
    return str(script)


def admin_call(admin, token, method, path, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{admin}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"authorization": f"Bearer {token}", "content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def chat_once(port, key, content):
    body = json.loads(chat_body())
    body["messages"][1]["content"] = content
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json", "authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
        return r.status, r.headers.get("x-switchboard-cache")


def scenario_llm_keys(args, procs, bins, tmp):
    """Issue 20's check: the LLM chat route (non-streaming, mock-llm) as it is without keys,
    against the same route with virtual keys (created through the admin API), a key and a team
    budget that every request is charged to (prices set), and the response cache, all in a
    loopback Redis. Requests differ from each other so the cache is looked up and misses; the
    hit path (identical requests) is reported on its own row. Also keys + budgets with the
    memory store.

    Each gateway has its own Redis prefix, so its cache index follows only its own answers.
    The cache TTL is 2 s: every answer written stays in the index until it expires (about
    17k req/s × 2 s, well under the index's 100,000 keys), which is how a replica runs while
    its fleet writes fewer than 100,000 answers per TTL. (b‴) is the other case, a full index
    (Redis pre-filled with 100,001 live answers under its prefix, TTL 10 m): a key the index does not
    hold may then be in Redis, so every miss asks Redis (`GET`) before the provider call."""
    if not shutil.which("redis-server"):
        log("llmkeys: redis-server not installed, skipped")
        return
    mock = free_port()
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    redis = start_redis(procs, tmp, "llmkeys")
    token = "bench-admin-token"
    big = {"usd": 1e9, "period": "month"}

    def start(name, sessions=None, keys=False, cache=False, binary=None, ttl="2s"):
        route = llm_route(mock)
        if keys:
            route["policies"] = {"authn": {"virtual_keys": True}}
            route["llm"]["prices"] = {"mock-gpt": {"input": 2.5, "output": 10}}
        if cache:
            route["llm"]["cache"] = {"ttl": ttl, "store": "redis"}
        port, admin = free_port(), free_port()
        cfg = {"admin": {"bind": f"127.0.0.1:{admin}", "token": token},
               "listeners": [{"name": "bench", "bind": f"127.0.0.1:{port}", "routes": [route]}]}
        if sessions:
            cfg["sessions"] = dict(sessions, redis=dict(sessions["redis"], prefix=f"{name}:"))
        path = tmp / f"{name}.yaml"
        path.write_text(json.dumps(cfg, indent=1))
        p = procs.start([str(binary or GATEWAY or bins / "switchboard"), "run", "-c", str(path)], port=port,
                        env=dict(os.environ, RUST_LOG="warn"))
        wait_port(admin, p)
        key = "client-key"
        if keys:
            key = admin_call(admin, token, "POST", "/api/keys", {"name": f"bench-{name}", "team": "bench", "budget": big})["key"]
            admin_call(admin, token, "PUT", "/api/teams/bench/budget", big)
        return p, port, admin, key

    redis_store = {"store": "redis", "redis": {"url": f"redis://127.0.0.1:{redis}"}}
    a = start("llmkeys-plain")
    b = start("llmkeys-redis", redis_store, keys=True, cache=True)
    c = start("llmkeys-memory", None, keys=True)
    d = start("llmkeys-redis-nocache", redis_store, keys=True)
    # (b‴): 100,001 live answers under its prefix before it starts, so its index is full.
    fill = "".join(f"*5\r\n$3\r\nSET\r\n${len(k)}\r\n{k}\r\n$1\r\nx\r\n$2\r\nPX\r\n$7\r\n3600000\r\n"
                   for k in (f"llmkeys-full:llmcache:{i:032x}{i:032x}" for i in range(100_001)))
    subprocess.run(["redis-cli", "-p", str(redis), "--pipe"], input=fill.encode(), check=True, capture_output=True)
    full = start("llmkeys-full", redis_store, keys=True, cache=True, ttl="10m")
    deadline = time.time() + 30
    while not (metric_value(full[2], "switchboard_llm_cache_index_entries") >= 100_000
               and metric_value(full[2], "switchboard_llm_cache_index_trusted") == 1):
        if time.time() > deadline:
            sys.exit("llmkeys: the (b‴) gateway's cache index did not fill from Redis")
        time.sleep(0.2)
    # The set-up does what it says: the key is needed, the cache misses then hits.
    try:
        chat_once(b[1], "sk-sb-wrong", "x")
        sys.exit("llmkeys: the keyed route answered a wrong key")
    except urllib.error.HTTPError as e:
        if e.code != 401:
            sys.exit(f"llmkeys: a wrong key got {e.code}, not 401")
    probe = f"probe {time.time()}"
    first = chat_once(b[1], b[3], probe)[1]
    # The answer is written to Redis in the background: the same request hits once it is
    # there (a loaded machine can take a moment).
    deadline = time.time() + 5
    second = chat_once(b[1], b[3], probe)[1]
    while second != "hit" and time.time() < deadline:
        time.sleep(0.05)
        second = chat_once(b[1], b[3], probe)[1]
    if [first, second] != ["miss", "hit"]:
        sys.exit(f"llmkeys: the cache did not miss then hit ({first}, then {second})")
    variants = {
        "(a) no keys, budgets, cache": (a, True),
        "(b) keys + budgets + cache, Redis — miss": (b, True),
        "(b′) same, cache hit": (b, False),
        "(b‴) same, index full: a miss asks Redis": (full, True),
        "(c) keys + budgets, memory store": (c, True),
        "(d) keys + budgets, Redis, no cache": (d, True),
    }
    if args.baseline:
        # Before/after a change to this path: (b) with the --baseline binary, same rounds.
        variants["(b) with the --baseline binary — miss"] = (
            start("llmkeys-redis-baseline", redis_store, keys=True, cache=True, binary=args.baseline), True)
        variants["(d) with the --baseline binary"] = (
            start("llmkeys-redis-nocache-baseline", redis_store, keys=True, binary=args.baseline), True)
    rounds = {k: {"c1": [], "c32": []} for k in variants}
    for i in range(args.rounds):
        for j, (name, ((p, port, _, key), vary)) in enumerate(variants.items()):
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            for conns in (1, 32):
                nonce = f"r{i}v{j}c{conns}t{time.time_ns()}" if vary else None
                script = varying_script(tmp, f"llmkeys-{j}-{conns}", key, nonce)
                r = measured(p.pid, lambda: wrk(url, conns, args.seconds, script))
                if r["non_2xx"] or r["socket_errors"]:
                    sys.exit(f"llmkeys scenario: {name} answered errors: {r}")
                rounds[name][f"c{conns}"].append(r)
    # Every keyed request was charged to the key's budget.
    for name, (gw, _) in variants.items():
        if gw is not a:
            used = [k.get("budget_used_usd", 0) for k in admin_call(gw[2], token, "GET", "/api/keys")["keys"]]
            if not used or not used[0] > 0:
                sys.exit(f"llmkeys: {name}: nothing charged to the budget ({used})")
    base = rounds["(a) no keys, budgets, cache"]
    rows = []
    for name, r in rounds.items():
        def delta(field, conns):
            return median(x[field] - y[field] for x, y in zip(r[conns], base[conns]))
        add50, add99 = delta("p50_us", "c1"), delta("p99_us", "c1")
        cpu = delta("cpu_us_per_req", "c32")
        ratio = median(x["rps"] / y["rps"] for x, y in zip(r["c32"], base["c32"]))
        first = name == "(a) no keys, budgets, cache"
        rows.append([name, fmt_us(median(x["p50_us"] for x in r["c1"])), fmt_us(median(x["p99_us"] for x in r["c1"])),
                     "—" if first else f"{fmt_delta(add50)} / {fmt_delta(add99)}",
                     f"{median(x['rps'] for x in r['c32']):,.0f}", "—" if first else f"{ratio:.3f}",
                     cpu_cell(r["c32"]), "—" if first else f"{'+' if cpu >= 0 else '−'}{abs(cpu):.1f} µs"])
    table("LLM chat route with virtual keys, budgets and the response cache (issue 20)",
          ["gateway", "p50 @1 conn", "p99 @1 conn", "added p50 / p99 vs (a)", "req/s @32 conns", "of (a)",
           "proxy CPU / switches per req @32", "added CPU per req"], rows)
    RESULTS["llm_keys"] = rounds


# Crates counted together in the instruction table: what one HTTP/1 exchange costs in the
# HTTP stack, in the runtime, in JSON, in libc, and in the gateway's own code.
CRATE_GROUPS = {
    "hyper, http, httparse, bytes": {"hyper", "hyper_util", "http", "httparse", "bytes", "http_body",
                                     "http_body_util", "want", "h2"},
    "tokio": {"tokio", "tokio_util", "mio"},
    "serde_json": {"serde_json", "serde", "serde_core"},
    "std, core, alloc": {"std", "core", "alloc", "str", "vec", "raw_vec", "hash", "collections", "slice", "fmt",
                         "sync", "iter", "ptr", "boxed", "string", "rc", "cell", "option", "result"},
}
OURS = "the gateway's own crates"
LIBC = "libc (memcpy, malloc, free)"


def crate_of(function, obj):
    """The crate group of one callgrind function name (`obj` is the object file it ran in)."""
    if "libc.so" in obj or "ld-linux" in obj:
        return LIBC
    name = function.strip()
    # `<T as Trait>::f` and `core::ptr::drop_in_place<T>` are the crate of T.
    for prefix in ("core::ptr::drop_in_place<", "<&mut ", "<&", "<"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    first = re.split(r"::|<| as ", name, maxsplit=1)[0].strip("<&* ")
    if first.startswith("switchboard"):
        return OURS
    for group, crates in CRATE_GROUPS.items():
        if first in crates:
            return group
    return first or "?"


def callgrind_by_crate(out_file):
    """Self instructions per crate group in one callgrind dump (`callgrind_annotate`'s
    exclusive counts, every function: `--threshold=100`)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(out_file)],
                          capture_output=True, text=True, check=True).stdout
    by = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S+?):(.+?)(?: \[([^\]]*)\])?\s*$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        group = crate_of(m.group(3), m.group(4) or m.group(2))
        by[group] = by.get(group, 0) + int(m.group(1).replace(",", ""))
    return by


def scenario_instructions(args, procs, bins, tmp):
    """Instructions per request, by crate, under valgrind's callgrind: plain HTTP (1 KiB), a
    non-streaming LLM chat (~1 KiB) and an MCP `tools/call`, each at one connection through a
    gateway with one serving thread. Unlike CPU time, the count moves by about 1% at most from
    run to run, on a quiet machine or a loaded one, so a change of a few percent shows (with
    `--baseline`, the other binary is counted the same way)."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        raise RuntimeError("valgrind is not installed (make setup installs it)")
    up, mock = free_port(), free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    fixture = start_fixture(procs, bins, threads=1)
    routes = [
        llm_route(mock),
        {"name": "mcp", "match": {"path_prefix": "/mcp"}, "mcp": {"targets": [{"name": "f0", "http": {"url": fixture}}]}},
        {"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}},
    ]
    chat = tmp / "instructions-chat.json"
    chat.write_text(chat_body())
    call = mcp_call_body(tmp, "test_simple_text")
    llm_headers = ["--header", "content-type: application/json", "--header", "authorization: Bearer client-key"]
    binaries = {"switchboard": GATEWAY or bins / "switchboard"}
    if args.baseline:
        binaries[BASELINE] = Path(args.baseline)
    # Two seconds at least: a debug build under callgrind serves some ten LLM requests a second.
    seconds = 2 if args.smoke else args.seconds
    counted = {}
    for name, binary in binaries.items():
        port, admin = free_port(), free_port()
        cfg = tmp / "instructions.yaml"
        gateway_config(cfg, port, admin, routes)
        out = tmp / f"callgrind-{len(counted)}.out"
        env = dict(os.environ, RUST_LOG="warn", SWITCHBOARD_WORKERS="1")
        gw = procs.start(["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                          str(binary), "run", "-c", str(cfg)], env=env)
        wait_port(port, gw, timeout=300)
        wait_port(admin, gw, timeout=300)
        base = f"http://127.0.0.1:{port}"
        cases = {
            "plain HTTP": [f"{base}/fixed"],
            "LLM chat": [f"{base}/v1/chat/completions", "--method", "POST", "--body-file", str(chat), *llm_headers],
            "MCP tools/call": [f"{base}/mcp", "--method", "POST", "--body-file", str(call), *MCP_HEADERS,
                               "--mcp-init", f"{base}/mcp"],
        }
        counted[name] = {}
        for dump, (case, load) in enumerate(cases.items(), start=1):
            def run(duration):
                return loadgen(bins, "latency", "--url", *load, "--duration", str(duration), "--connections", "1")
            run(1)  # warm: connections, pools and sessions open; nothing counted yet
            subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
            res = run(seconds)
            subprocess.run(["callgrind_control", "-i", "off", str(gw.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-d", str(gw.pid)], check=True, capture_output=True)
            part = Path(f"{out}.{dump}")
            deadline = time.time() + 60
            while not part.exists() and time.time() < deadline:
                time.sleep(0.1)
            by = callgrind_by_crate(part)
            if args.callgrind_dir:
                # Kept for `callgrind_annotate` (which function, which caller).
                keep = Path(args.callgrind_dir)
                keep.mkdir(parents=True, exist_ok=True)
                label = re.sub(r"[^a-z0-9]+", "-", f"{name} {case}".lower()).strip("-")
                kept = keep / f"callgrind.{label}.out"
                shutil.copy(part, kept)
                if callgrind_by_crate(kept) != by:
                    raise RuntimeError(f"instructions: the dump kept at {kept} does not read back the same")
            n = res["latency"]["count"]
            counted[name][case] = {"requests": n, "errors": res["errors"], "by_crate": by,
                                   "per_request": {k: v / max(n, 1) for k, v in by.items()}}
        procs.stop(gw)
    groups = [*CRATE_GROUPS, OURS, LIBC]
    header = ["binary", "scenario", "requests", "errors", *groups, "other", "total"]
    rows = []
    for name, cases in counted.items():
        for case, r in cases.items():
            per = r["per_request"]
            other = sum(v for k, v in per.items() if k not in groups)
            rows.append([name, case, r["requests"], r["errors"], *(f"{per.get(g, 0) / 1000:.1f}k" for g in groups),
                         f"{other / 1000:.1f}k", f"**{sum(per.values()) / 1000:.1f}k**"])
    table("Instructions per request by crate (callgrind, one serving thread, one connection)", header, rows)
    RESULTS["instructions"] = counted
    for cases in counted.values():
        for case, r in cases.items():
            if r["requests"] == 0 or r["errors"] or not r["by_crate"].get(OURS):
                raise RuntimeError(f"instructions, {case}: {r['requests']} requests, {r['errors']} errors, "
                                   f"{r['by_crate'].get(OURS, 0)} instructions of the gateway's own")


def scenario_train(args, procs, bins, tmp):
    """The training load of a profile-guided build (scripts/pgo-build.sh): each kind of traffic
    the harness measures, through the gateway binary of `--gateway` (built with
    `-Cprofile-generate`), which writes its profile when it exits. Two gateways: one with the
    access log off and one writing it to a file, so that neither way is left cold. Each load
    must be answered without an error, and each gateway must exit cleanly (a killed process
    writes no profile)."""
    up, mock = free_port(), free_port()
    procs.start([str(bins / "upstream"), "--bind", f"127.0.0.1:{up}"], port=up)
    procs.start([str(bins / "mock-llm"), "--bind", f"127.0.0.1:{mock}"], port=mock)
    fixtures = [start_fixture(procs, bins, threads=1) for _ in range(3)]
    anthropic = {"name": "claude", "providers": [{"provider": "anthropic", "model": "mock-claude",
                                                   "api_key": "bench-key", "base_url": f"http://127.0.0.1:{mock}"}]}
    llm = llm_route(mock)
    llm["llm"]["models"].append(anthropic)
    routes = [
        llm,
        {"name": "one", "match": {"path_prefix": "/one"}, "mcp": {"targets": [{"name": "f0", "http": {"url": fixtures[0]}}]}},
        {"name": "three", "match": {"path_prefix": "/three"}, "mcp": {"targets": [
            {"name": f"f{i}", "http": {"url": u}} for i, u in enumerate(fixtures)]}},
        {"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}},
    ]
    chat, _ = post_script(tmp, "train-chat", chat_body(), {"Content-Type": "application/json",
                                                           "Authorization": "Bearer client-key"})
    claude = json.loads(chat_body())
    claude["model"] = "claude"
    to_claude, _ = post_script(tmp, "train-claude", json.dumps(claude), {"Content-Type": "application/json",
                                                                         "Authorization": "Bearer client-key"})
    messages = json.dumps({"model": "bench", "max_tokens": 16, "system": "You are terse.",
                           "messages": [{"role": "user", "content": "Summarize the following notes. " * 28}]})
    from_claude, _ = post_script(tmp, "train-messages", messages, {"Content-Type": "application/json",
                                                                   "x-api-key": "client-key",
                                                                   "anthropic-version": "2023-06-01"})
    stream = tmp / "train-stream.json"
    stream.write_text(json.dumps({"model": "bench", "stream": True, "max_tokens": 200,
                                  "messages": [{"role": "user", "content": "[words=100] stream please"}]}))
    call = mcp_call_body(tmp, "test_simple_text")
    call3 = mcp_call_body(tmp, "f1__test_simple_text")
    variants = {"access log off": None, "access log to a file": {"access_log": {"to": str(tmp / "train-access.log")}}}
    rows = []
    for i, (variant, extra) in enumerate(variants.items()):
        gw, port, _, _ = start_gateway(procs, bins, tmp, routes, f"train{i}", extra=extra)
        base = f"http://127.0.0.1:{port}"
        served = {}
        for name, (url, script) in {"plain HTTP": (f"{base}/fixed", None),
                                    "LLM chat": (f"{base}/v1/chat/completions", chat),
                                    "LLM chat to Anthropic": (f"{base}/v1/chat/completions", to_claude),
                                    "Anthropic messages": (f"{base}/v1/messages", from_claude)}.items():
            r = wrk(url, 8, args.seconds, script)
            if r["non_2xx"] or r["socket_errors"] or not r["requests"]:
                raise RuntimeError(f"train: {name} ({variant}) answered errors: {r}")
            served[name] = r["requests"]
        r = loadgen(bins, "stream", "--url", f"{base}/v1/chat/completions", "--method", "POST", "--body-file", str(stream),
                    "--header", "content-type: application/json", "--header", "authorization: Bearer client-key",
                    "--concurrency", "4", "--requests", str(100 * args.seconds))
        if r["errors"] or r["lost_events"]:
            raise RuntimeError(f"train: LLM streams ({variant}) failed: {r['errors'][:3]}, {r['lost_events']} lost")
        served["LLM streams"] = r["streams"]
        for name, (path, body) in {"MCP, one target": ("one", call), "MCP, three targets": ("three", call3)}.items():
            r = loadgen(bins, "latency", "--url", f"{base}/{path}", "--method", "POST", "--body-file", str(body),
                        *MCP_HEADERS, "--mcp-init", f"{base}/{path}", "--duration", str(args.seconds), "--connections", "8")
            if r["errors"] or not r["latency"]["count"]:
                raise RuntimeError(f"train: {name} ({variant}) failed: {r.get('error_kinds')}")
            served[name] = r["latency"]["count"]
        procs.stop(gw)
        if gw.returncode != 0:
            raise RuntimeError(f"train: the gateway ({variant}) exited with {gw.returncode}; it writes no profile then")
        rows.append([variant, *(f"{n:,}" for n in served.values())])
    table("Training load (requests, streams or calls served)", ["gateway", *served], rows)


SCENARIOS = {
    "http": scenario_http,
    "accesslog": scenario_access_log,
    "llm": scenario_llm,
    "guardrails": scenario_guardrails,
    "mcp": scenario_mcp,
    "memory": scenario_memory,
    "idle": scenario_memory,
    "config": scenario_config_swap,
    "limits": scenario_limits,
    "llmkeys": scenario_llm_keys,
    "instructions": scenario_instructions,
    "train": scenario_train,
}

# Other names of a scenario (`--only idle` runs the memory scenario).
ALIASES = {"idle": "memory"}

# Scenarios that run only when named (`--only train`): a load, not a measurement.
ONLY_BY_NAME = {"train"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="seconds-long pass with debug binaries (CI)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--routes", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--only", nargs="*", choices=list(SCENARIOS), help="scenarios to run")
    ap.add_argument("--baseline", help="http, accesslog, llm, mcp, llmkeys and memory (idle) scenarios: also this switchboard binary (before/after a change)")
    ap.add_argument("--tracing", action="store_true",
                    help="http scenario: also a gateway with tracing on (sampling 1, and sampling 0)")
    ap.add_argument("--json", help="write raw results here")
    ap.add_argument("--callgrind-dir", help="instructions scenario: keep each callgrind dump here (for callgrind_annotate)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in target/")
    ap.add_argument("--gateway", help="the switchboard binary to run (default: the one in target/); "
                                      "the train scenario's is scripts/pgo-build.sh's instrumented build")
    ap.add_argument("--litellm", action="store_true", help="also measure LiteLLM (installs litellm[proxy] into a venv)")
    ap.add_argument("--compare-runtime", action="store_true",
                    help="also measure the gateway on one shared work-stealing runtime (SWITCHBOARD_WORKERS=0), "
                         "as it ran before the serving threads")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.routes, args.sessions = 1, 1, 200, 100
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (make setup installs it)")
    profile = "dev" if args.smoke else "release"
    if not args.no_build:
        subprocess.run(["cargo", "build", "--quiet", "--profile", profile, "-p", "switchboard-gateway", "-p", "switchboard-examples", "--bins"],
                       cwd=ROOT, check=True)
    bins = ROOT / "target" / ("debug" if args.smoke else "release")
    global GATEWAY
    GATEWAY = Path(args.gateway).resolve() if args.gateway else None
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"## Run of {time.strftime('%Y-%m-%d %H:%M')} — {os.cpu_count()} cores, {cpu}, profile {profile}, "
          f"{args.rounds} rounds × {args.seconds}s\n", flush=True)
    procs = Procs()
    tmp = Path(tempfile.mkdtemp(prefix="switchboard-bench-"))
    try:
        for name, fn in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            if name in ALIASES and (not args.only or ALIASES[name] in args.only):
                continue
            if name in ONLY_BY_NAME and not (args.only and name in args.only):
                continue
            log(f"== scenario {name}")
            fn(args, procs, bins, tmp)
    finally:
        procs.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=1))


if __name__ == "__main__":
    main()
