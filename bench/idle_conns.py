#!/usr/bin/env python3
"""Open N keep-alive connections, send one request on each, then hold them idle.

Used by bench/suite.sh (scenario idle-10k) to measure a server's memory per idle
connection:

    python3 bench/idle_conns.py --port 18185 --host-header hit.bench.test \
        --path /1k.html --conns 10000

Each connection sends one `GET <path> HTTP/1.1` (keep-alive), reads the whole
response (Content-Length or chunked framing), and then stays open without
sending anything. When every connection has been tried the client prints

    READY ok=<n> failed=<m> seconds=<t>

on stdout and waits for a line on stdin. It then checks how many connections
the server still holds open (a closed one reads EOF), prints

    OPEN <n>

and exits, closing everything. RLIMIT_NOFILE is raised to what the hard limit
(or, as root, --conns plus headroom) allows.
"""

import argparse
import asyncio
import sys
import time

from nofile import raise_nofile


async def read_response(reader: asyncio.StreamReader) -> int:
    """Reads one response; returns its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def open_one(args, sem, conns, failures):
    async with sem:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(args.addr, args.port, limit=256 * 1024), 30
            )
        except Exception as err:  # noqa: BLE001 - any failure counts
            failures.append(f"connect: {err!r}")
            return
        try:
            req = (
                f"GET {args.path} HTTP/1.1\r\nHost: {args.host_header}\r\n"
                "User-Agent: idle-conns\r\nAccept: */*\r\n\r\n"
            ).encode()
            writer.write(req)
            await writer.drain()
            status = await asyncio.wait_for(read_response(reader), 30)
            if status != 200:
                failures.append(f"status {status}")
        except Exception as err:  # noqa: BLE001
            failures.append(f"request: {err!r}")
            writer.close()
            return
        conns.append((reader, writer))


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host-header", default="localhost")
    p.add_argument("--path", default="/1k.html")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--parallel", type=int, default=200, help="connections being opened at once")
    args = p.parse_args()

    limit = raise_nofile(args.conns + 1024)
    if limit < args.conns + 64:
        print(f"RLIMIT_NOFILE is {limit}: too low for {args.conns} connections", file=sys.stderr)
        return 2

    sem = asyncio.Semaphore(args.parallel)
    conns: list = []
    failures: list = []
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(args, sem, conns, failures) for _ in range(args.conns)))
    took = time.monotonic() - t0
    if failures:
        print(f"first failure: {failures[0]}", file=sys.stderr)
    print(f"READY ok={len(conns)} failed={len(failures)} seconds={took:.1f}", flush=True)

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)

    # A connection the server closed has hit EOF (or has an error pending).
    await asyncio.sleep(0)
    still_open = 0
    for reader, _ in conns:
        if not reader.at_eof() and reader.exception() is None:
            still_open += 1
    print(f"OPEN {still_open}", flush=True)
    for _, writer in conns:
        writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
