#!/usr/bin/env python3
"""Regenerate gateway/startup.ld: the functions the gateway runs while it starts, laid out together.

The gateway's start-up code (command line, config parsing and validation, route building, TLS and
provider clients, the serving threads) is spread over a 25 MB `.text`. Every function it runs
faults in at least the page-cache folio around it, and those pages stay in the idle process's
resident set; laid out together they take a few MB. The linker script this writes gives the
linker one output section, `.text.sb_startup`, placed before `.text`, that gathers the input
sections (`-ffunction-sections`, rustc's default) of those functions; gateway/build.rs passes it
to the linker. A function that is not in the list is only laid out elsewhere: a stale list costs
memory, never correctness.

How the list is found: the release binary starts three times under `valgrind --tool=callgrind`, with
examples/quickstart.yaml (every route kind, the example upstreams answering) and with one HTTP
route written as block YAML and as JSON, each until it is idle, and every function of the binary
that ran becomes a pattern. Patterns leave out what changes between builds and compilers (the
legacy mangling's trailing hash, `.llvm.N` suffixes and fat LTO's `.N` ones, the v0 mangling's
crate disambiguators), so most of the list survives code, dependency and toolchain updates; a
generic function's instances share such a pattern, so where many instances did not run, those that
did are listed by full name instead (see BROAD), and those names go stale with the next change.

Usage: cargo build --release -p switchboard-gateway -p switchboard-examples --bins
       python3 scripts/startup-layout.py        (or `make startup-layout`)
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Bytes of a generic function's instances that did not run above which only the instances that
# ran are listed (see below).
BROAD = 16 << 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"port {port} did not open")


def pattern(name):
    """A mangled symbol name without the parts that change between builds."""
    # `.llvm.N`, and the `.N` that fat LTO gives local symbols: both renumbered by any change.
    name = re.sub(r"\.(llvm\.)?\d+$", "", name)
    if name.startswith("_ZN"):
        name = re.sub(r"17h[0-9a-f]{16}E$", "", name)
    elif name.startswith("_R"):
        name = re.sub(r"Cs[0-9A-Za-z]*_", "Cs*_", name)
    if any(c in name for c in "[]?\"' \t"):
        return None
    return name


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bins", default=str(ROOT / "target" / "release"), help="switchboard and the example upstreams")
    ap.add_argument("--out", default=str(ROOT / "gateway" / "startup.ld"))
    ap.add_argument("--ran", help="also write the names of the functions that ran to this file")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds to stay running once the admin port answers")
    args = ap.parse_args()
    bins = Path(args.bins)
    binary = bins / "switchboard"
    procs = []
    ran, seen = [], set()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            ports = {k: free_port() for k in ("UPSTREAM_HTTP", "UPSTREAM_LLM", "UPSTREAM_MCP", "UPSTREAM_A2A")}
            for name, flag in (("upstream", "UPSTREAM_HTTP"), ("mock-llm", "UPSTREAM_LLM"),
                               ("mcp-fixture", "UPSTREAM_MCP"), ("a2a-echo", "UPSTREAM_A2A")):
                p = subprocess.Popen([str(bins / name), "--bind", f"127.0.0.1:{ports[flag]}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(p)
                wait_port(ports[flag], p)
            up = ports["UPSTREAM_HTTP"]
            # Three start-ups: the quickstart (every route kind, block YAML), and one HTTP route
            # written as block YAML and as JSON (the two YAML parser paths), as the benchmarks run it.
            def block_yaml(admin, port):
                return (f"admin: {{bind: \"127.0.0.1:{admin}\"}}\nlisteners:\n  - name: layout\n"
                        f"    bind: 127.0.0.1:{port}\n    routes:\n      - name: up\n"
                        f"        http:\n          url: http://127.0.0.1:{up}\n")

            def json_config(admin, port):
                return json.dumps({"admin": {"bind": f"127.0.0.1:{admin}"}, "listeners": [
                    {"name": "layout", "bind": f"127.0.0.1:{port}",
                     "routes": [{"name": "up", "http": {"url": f"http://127.0.0.1:{up}"}}]}]})

            configs = [ROOT / "examples" / "quickstart.yaml", block_yaml, json_config]
            for i, config in enumerate(configs):
                port, admin = free_port(), free_port()
                if isinstance(config, Path):
                    path = config
                else:
                    path = tmp / f"gw{i}.yaml"
                    path.write_text(config(admin, port))
                env = dict(os.environ, RUST_LOG="warn", SWITCHBOARD_ADMIN=f"127.0.0.1:{admin}",
                           SWITCHBOARD_BIND=f"127.0.0.1:{port}", MCP_ECHO=str(bins / "mcp-echo"),
                           **{k: f"127.0.0.1:{v}" for k, v in ports.items()})
                out = tmp / f"callgrind{i}.out"
                gw = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", "--demangle=no", "--dump-instr=no",
                     f"--callgrind-out-file={out}", str(binary), "run", "-c", str(path)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
                procs.append(gw)
                wait_port(admin, gw)
                time.sleep(args.idle)
                gw.send_signal(signal.SIGTERM)
                gw.wait(timeout=120)
                for line in out.read_text().splitlines():
                    m = re.match(r"c?fn=\(\d+\) (.+)$", line)
                    if m:
                        name = re.sub(r"'\d+$", "", m.group(1))
                        if name not in seen:
                            seen.add(name)
                            ran.append(name)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
    if args.ran:
        Path(args.ran).write_text("\n".join(ran) + "\n")
    nm = subprocess.run(["nm", "-S", "--defined-only", str(binary)], capture_output=True, text=True, check=True)
    size = {p[3]: int(p[1], 16) for p in (l.split() for l in nm.stdout.splitlines()) if len(p) == 4 and p[2] in "tTwW"}
    family = {}
    for name, n in size.items():
        key = pattern(name)
        family[key] = family.get(key, 0) + n
    ran = [name for name in ran if name in size]
    ran_bytes = {}
    for name in ran:
        key = pattern(name)
        ran_bytes[key] = ran_bytes.get(key, 0) + size[name]
    # A generic function's instances share the pattern. Where the instances that did not run
    # add up to more than BROAD bytes (`<&T as Debug>::fmt` has 1,300), only those that ran are
    # listed, by their full name: a compiler or dependency update renames them, and they fall
    # back to the rest of .text until the list is written again.
    patterns = set()
    for name in ran:
        key = pattern(name)
        if key is None:
            continue
        if family[key] - ran_bytes[key] > BROAD:
            patterns.add(re.sub(r"\.llvm\.\d+$", "", name))
        else:
            patterns.add(key)
    patterns = sorted(patterns)
    # One input-section description with every pattern, not one per pattern: the linker walks
    # all input sections once per description, and 1,500 descriptions made a debug link take
    # 20 s instead of 1.3 s. Within the section, functions keep their input order.
    # LLVM puts functions it deems cold (`#[cold]`, called only on unlikely paths) in
    # `.text.unlikely.*` sections; start-up runs many of them (lazy initialisers, the first
    # growth of every table).
    body = "\n".join(f"      .text.{p}*\n      .text.unlikely.{p}*" for p in patterns)
    Path(args.out).write_text(
        "/* Generated by scripts/startup-layout.py: the gateway's start-up functions, gathered before\n"
        "   .text so that the idle process maps a few MB of code instead of most of it. Read by\n"
        "   gateway/build.rs; regenerate with `make startup-layout`. */\n"
        "SECTIONS\n{\n  .text.sb_startup :\n  {\n    *(\n" + body + "\n    )\n  }\n}\nINSERT BEFORE .text;\n")
    print(f"{len(patterns)} patterns from {len(ran)} functions of the binary that ran -> {args.out}")


if __name__ == "__main__":
    main()
