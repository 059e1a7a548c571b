#!/usr/bin/env python3
"""Hold N hostile connections open against a server, reopening each one it closes.

Used by bench/suite.sh (scenario hostile-10k) to measure what connections that
never finish anything cost a server and its normal viewers:

    python3 bench/hostile_conns.py --port 18185 --host-header hit.bench.test \
        --conns 10000 [--tls-port 18187]

The connections are spread evenly over these shapes (the probes of
docs/security.md):

- `p`: one byte, `P` (the start of an HTTP/2 preface), then nothing;
- `preface`: a partial HTTP/2 preface, then nothing;
- `h2c`: the whole preface and an empty SETTINGS frame, then nothing;
- `head`: an unfinished HTTP/1.1 head, one more header line every 5 s
  (slowloris);
- `reader`: 64 pipelined GETs of --big-path, and the responses never read;
- `tls`: a TLS handshake (ALPN h2 and http/1.1), then nothing (only with
  --tls-port; the certificate is not checked).

A connection the server closes is opened again after --reopen-delay seconds,
so the server holds as many as it lets live. Once every connection has been
tried the client prints

    READY open=<n> failed=<m> seconds=<t>

on stdout and waits for a line on stdin; then it prints

    HELD open=<n> reopened=<r> by_shape=<shape:open/reopened,...>

(`open`: connections open at that moment; `reopened`: closes by the server
meanwhile) and exits. RLIMIT_NOFILE is raised as far as the hard limit allows.
"""

import argparse
import asyncio
import ssl
import sys
import time

from nofile import raise_nofile

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


class Shape:
    def __init__(self, name: str):
        self.name = name
        self.open = 0
        self.reopened = 0
        self.failed = 0


async def behave(shape: str, reader, writer, args) -> None:
    """Does what the shape does, until the server closes the connection."""
    if shape == "p":
        writer.write(b"P")
    elif shape == "preface":
        writer.write(PREFACE[:10])
    elif shape == "h2c":
        writer.write(PREFACE + SETTINGS)
    elif shape == "head":
        writer.write(f"GET / HTTP/1.1\r\nHost: {args.host_header}\r\n".encode())
    elif shape == "reader":
        one = f"GET {args.big_path} HTTP/1.1\r\nHost: {args.host_header}\r\n\r\n".encode()
        writer.write(one * 64)
    await writer.drain()
    n = 0
    while True:
        if shape == "head":
            # One more header line now and then: never the end of the head.
            try:
                await asyncio.wait_for(reader.read(1), 5)
                if reader.at_eof():
                    return
            except asyncio.TimeoutError:
                n += 1
                writer.write(f"X-Slow-{n}: 1\r\n".encode())
                await writer.drain()
            continue
        if shape == "reader":
            # Never reads: waits for the server to give up on it (the
            # socket errors or closes once it does).
            await asyncio.sleep(1)
            if writer.is_closing() or reader.exception() is not None:
                return
            try:
                writer.write(b"")
                await writer.drain()
            except (ConnectionError, OSError):
                return
            transport = writer.transport
            if transport is None or transport.is_closing():
                return
            continue
        # Reads whatever the server sends (an HTTP/2 SETTINGS, a GOAWAY) and
        # returns once it closes.
        data = await reader.read(65536)
        if not data:
            return


async def hold(shape: Shape, args, tls_context, stop: asyncio.Event, tried) -> None:
    first = True
    while not stop.is_set():
        port = args.tls_port if shape.name == "tls" else args.port
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    args.addr,
                    port,
                    ssl=tls_context if shape.name == "tls" else None,
                    server_hostname=args.host_header if shape.name == "tls" else None,
                    limit=16 * 1024,
                ),
                30,
            )
        except Exception:  # noqa: BLE001 - any failure counts
            shape.failed += 1
            if first:
                first = False
                tried.release()
            await asyncio.sleep(args.reopen_delay)
            continue
        shape.open += 1
        if first:
            first = False
            tried.release()
        if shape.name == "reader":
            # A small receive buffer, so that the server's send queue, not
            # this client's, fills up.
            sock = writer.get_extra_info("socket")
            if sock is not None:
                import socket

                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            done = asyncio.ensure_future(behave(shape.name, reader, writer, args))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                done.cancel()
                stopped.cancel()
                shape.open -= 1
                writer.close()
                return
            stopped.cancel()
        except Exception:  # noqa: BLE001
            pass
        shape.open -= 1
        shape.reopened += 1
        writer.close()
        await asyncio.sleep(args.reopen_delay)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-port", type=int)
    p.add_argument("--host-header", default="localhost")
    p.add_argument("--big-path", default="/100k.html")
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--reopen-delay", type=float, default=0.5)
    p.add_argument("--parallel", type=int, default=200, help="connections being opened at once")
    args = p.parse_args()

    limit = raise_nofile(args.conns + 1024)
    if limit < args.conns + 64:
        print(f"RLIMIT_NOFILE is {limit}: too low for {args.conns} connections", file=sys.stderr)
        return 2

    names = ["p", "preface", "h2c", "head", "reader"] + (["tls"] if args.tls_port else [])
    shapes = {name: Shape(name) for name in names}
    tls_context = None
    if args.tls_port:
        tls_context = ssl.create_default_context()
        tls_context.check_hostname = False
        tls_context.verify_mode = ssl.CERT_NONE
        tls_context.set_alpn_protocols(["h2", "http/1.1"])

    stop = asyncio.Event()
    tried = asyncio.Semaphore(0)
    gate = asyncio.Semaphore(args.parallel)
    t0 = time.monotonic()
    tasks = []

    async def start(shape):
        async with gate:
            task = asyncio.ensure_future(hold(shape, args, tls_context, stop, tried))
            tasks.append(task)
            await tried.acquire()

    await asyncio.gather(*(start(shapes[names[i % len(names)]]) for i in range(args.conns)))
    took = time.monotonic() - t0
    opened = sum(s.open for s in shapes.values())
    failed = sum(s.failed for s in shapes.values())
    print(f"READY open={opened} failed={failed} seconds={took:.1f}", flush=True)
    for s in shapes.values():
        s.reopened = 0

    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    held = sum(s.open for s in shapes.values())
    reopened = sum(s.reopened for s in shapes.values())
    detail = ",".join(f"{s.name}:{s.open}/{s.reopened}" for s in shapes.values())
    print(f"HELD open={held} reopened={reopened} by_shape={detail}", flush=True)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
