#!/usr/bin/env python3
"""Reports import cycles between the top-level modules of a Rust crate.

    scripts/modcycles.py gateway/src [mcp/src ...]

A file `src/foo.rs` or `src/foo/**.rs` belongs to the top-level module `foo`. Every
`crate::bar...` path in it (in `use` items, `use crate::{bar::X, baz}` groups, and inline
paths) is an edge foo -> bar. Comments and string literals are skipped, so doc links do not
count; `#[cfg(test)]` modules are skipped too (a test may build any part of the crate).
`super::` paths are not followed: inside `foo/` they stay in `foo`. `lib.rs` and `main.rs` are
the crate root and the binary, not modules.

Exit status 1 when any two modules reach each other, with one path per cycle and the file and
line of each edge on it; 0 otherwise. Python 3, no dependencies.
"""

import os
import re
import sys


def strip(text):
    """Blanks comments and string/char literals, keeping newlines so line numbers hold."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
            continue
        if text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'b?r(#*)"', text[i:i + 260]) if c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")) else None
        if m:
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        if c == "'":
            # A char literal ('x', '\n', '"') or a lifetime ('a).
            if text.startswith("\\", i + 1):
                j = text.find("'", i + 3)
                i = n if j < 0 else j + 1
                continue
            if i + 2 < n and text[i + 2] == "'":
                i += 3
                continue
        out.append(c)
        i += 1
    return "".join(out)


def drop_test_modules(code):
    """Blanks `#[cfg(test)] mod name { ... }` blocks (keeping newlines)."""
    for m in list(re.finditer(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code))[::-1]:
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), j) + code[j:]
    return code


def group_heads(code, start):
    """Top-level names in the `{a::b, c, d::{e}}` group opening at code[start] == '{'."""
    names, depth, token, j = [], 0, "", start
    expect_name = True
    while j < len(code):
        ch = code[j]
        if ch == "{":
            depth += 1
            if depth == 1:
                expect_name = True
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and ch == ",":
            expect_name = True
        elif depth == 1 and expect_name and (ch.isalnum() or ch == "_"):
            k = j
            while k < len(code) and (code[k].isalnum() or code[k] == "_"):
                k += 1
            names.append(code[j:k])
            expect_name = False
            j = k
            continue
        j += 1
    return names


def edges_of(crate_src):
    """{module: {target: (file, line)}} for one crate's src directory."""
    edges = {}
    for root, _dirs, files in os.walk(crate_src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, crate_src)
            parts = rel.split(os.sep)
            module = parts[0][:-3] if len(parts) == 1 else parts[0]
            if module in ("lib", "main"):
                continue
            with open(path, encoding="utf-8") as fh:
                code = drop_test_modules(strip(fh.read()))
            for m in re.finditer(r"(?<![\w$])crate::(\{|\w+)", code):
                line = code.count("\n", 0, m.start()) + 1
                heads = group_heads(code, m.start(1)) if m.group(1) == "{" else [m.group(1)]
                for target in heads:
                    if target != module and target != "self":
                        edges.setdefault(module, {}).setdefault(target, (path, line))
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    nodes = set(edges) | {t for ts in edges.values() for t in ts}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                sccs.append(sorted(scc))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sccs


def shortest_cycle(edges, scc):
    """One cycle through the first module of the component, by breadth-first search."""
    members, start = set(scc), scc[0]
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, {})):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return [start] + path[::-1][1:] + [start] if len(path) > 1 else [start, v, start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return scc


def main(args):
    if not args:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    found = False
    for src in args:
        edges = edges_of(src)
        for scc in cycles(edges):
            found = True
            print(f"{src}: import cycle between modules {', '.join(scc)}")
            cycle = shortest_cycle(edges, scc)
            for a, b in zip(cycle, cycle[1:]):
                file, line = edges[a][b]
                print(f"  {a} -> {b}  ({file}:{line})")
    if not found:
        print(f"no import cycles between top-level modules in {', '.join(args)}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
