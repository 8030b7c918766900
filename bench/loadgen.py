"""HTTP load generator for bench/pipeline.py and bench/intake.py (runs in a worker process).

`run_closed` keeps a fixed number of requests in flight (flat out); the rest of this page is
about the open loop.

`run_step` sends `round(rate * duration)` POSTs at a constant rate (request i is due at
start + i / rate, whether or not earlier ones have answered), on uvloop, through either

* `lean` (pipeline.py's default): a minimal HTTP/1.1 keep-alive client on asyncio protocols
  (pre-built request bytes, a status line / Content-Length / chunked parser, one request per
  connection at a time): ~0.25-0.5 ms CPU per request here; or
* `httpx`: one httpx.AsyncClient with a keep-alive pool: ~1-1.3 ms CPU per request here
  (measured against a do-nothing server), and it degrades once requests queue, so on this
  2-core machine it tops out near 400-700 requests/s and takes CPU from the servers.

At most `max_inflight` requests are outstanding: a request that falls due while the cap is
reached is not sent and counted as `shed` (the server is not keeping up). Only loopback URLs
are accepted. The step is bounded in count and in time (every request has a timeout; the
step ends at most `duration + timeout + 5` s after its start).
"""

import asyncio
import json
import resource
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvloop  # ships with uvicorn[standard]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
UNIQUE = b"%N%"  # placeholder in a body template, replaced per request


def _body(body: bytes | list[bytes], index: int, tag: str) -> bytes:
    """Request `index`'s body: the next of a list, or the template with `%N%` made unique."""
    if isinstance(body, list):
        return body[index % len(body)]
    return body.replace(UNIQUE, b"%sn%07d" % (tag.encode(), index)) if UNIQUE in body else body


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _HttpxPost:
    def __init__(self, url: str, headers: dict[str, str], max_conns: int, timeout: float) -> None:
        limits = httpx.Limits(max_connections=max_conns, max_keepalive_connections=max_conns)
        self.client = httpx.AsyncClient(limits=limits, timeout=timeout)
        self.url = url
        self.headers = {**headers, "content-type": "application/json"}

    async def post(self, body: bytes, token: str | None) -> tuple[int, bytes]:
        headers = self.headers if token is None else {**self.headers,
                                                      "authorization": f"Bearer {token}"}
        response = await self.client.post(self.url, content=body, headers=headers)
        return response.status_code, response.content

    async def close(self) -> None:
        await self.client.aclose()


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        rest = bytes(self.buffer[end + 4:])
        if chunked:
            body, pos = b"", 0
            while True:
                line_end = rest.find(b"\r\n", pos)
                if line_end < 0:
                    return
                size = int(rest[pos:line_end].split(b";")[0], 16)
                if len(rest) < line_end + 2 + size + 2:
                    return
                body += rest[line_end + 2:line_end + 2 + size]
                pos = line_end + 2 + size + 2
                if size == 0:
                    break
            used = end + 4 + pos
        else:
            if len(rest) < length:
                return
            body, used = rest[:length], end + 4 + length
        del self.buffer[:used]
        if close:  # the server ends this connection: never reuse it
            self.closed = True
            self.transport.close()
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))


class _LeanPost:
    def __init__(self, url: str, headers: dict[str, str], max_conns: int, timeout: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        head = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}",
                "Content-Type: application/json"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.head = ("\r\n".join(head) + "\r\nContent-Length: ").encode()
        self.idle: list[_Conn] = []
        self.timeout = timeout

    async def post(self, body: bytes, token: str | None) -> tuple[int, bytes]:
        conn = None
        while self.idle:
            candidate = self.idle.pop()
            if not candidate.closed:
                conn = candidate
                break
        if conn is None:
            _, conn = await asyncio.get_running_loop().create_connection(
                _Conn, self.host, self.port)
        conn.waiter = asyncio.get_running_loop().create_future()
        auth = b"" if token is None else b"\r\nAuthorization: Bearer " + token.encode()
        conn.transport.write(self.head + b"%d%s\r\n\r\n" % (len(body), auth) + body)
        try:
            status, body = await asyncio.wait_for(conn.waiter, self.timeout)
        except BaseException:
            conn.transport.close()
            raise
        self.idle.append(conn)
        return status, body

    async def close(self) -> None:
        for conn in self.idle:
            conn.transport.close()
        self.idle.clear()


async def _step(url: str, headers: dict[str, str], body: bytes | list[bytes], rate: float,
                duration: float, start_wall: float, max_inflight: int, request_timeout: float,
                client_kind: str, tag: str, tokens: list[str] | None) -> dict[str, Any]:
    if urlsplit(url).hostname not in LOOPBACK:
        raise ValueError(f"refusing a non-loopback target: {url}")
    total = max(1, round(rate * duration))
    results: list[tuple[float, int, float, str | None]] = []  # send wall, status, ms, lead id
    shed = 0
    inflight = 0
    late = 0.0  # worst lateness of a send vs its schedule, seconds
    done = asyncio.Event()
    kind = {"httpx": _HttpxPost, "lean": _LeanPost}[client_kind]
    client = kind(url, headers, max_inflight, request_timeout)
    try:

        async def one(index: int) -> None:
            nonlocal inflight
            sent = time.time()
            began = time.perf_counter()
            status, lead_id = -1, None
            payload = _body(body, index, tag)
            try:
                token = tokens[index % len(tokens)] if tokens else None
                status, content = await client.post(payload, token)
                if status == 201:
                    lead_id = json.loads(content)["id"]
            except Exception:  # timeouts, resets: counted as errors, never retried
                status = -1
            results.append((sent, status, (time.perf_counter() - began) * 1000, lead_id))
            inflight -= 1
            if inflight == 0 and launched == total:
                done.set()

        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, start_wall - time.time()))
        cpu0 = _cpu_seconds()
        t0 = loop.time()
        launched = 0
        tasks = set()
        while launched < total:
            now = loop.time()
            due = min(total, int((now - t0) * rate) + 1)
            while launched < due:
                late = max(late, now - (t0 + launched / rate))
                launched += 1
                if inflight >= max_inflight:
                    shed += 1
                    continue
                inflight += 1
                task = asyncio.create_task(one(launched))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if launched < total:
                await asyncio.sleep(max(0.0, t0 + launched / rate - loop.time()))
        sent_until = time.time()
        if inflight:
            try:
                await asyncio.wait_for(done.wait(), request_timeout + 5)
            except TimeoutError:
                pass
        cpu = _cpu_seconds() - cpu0
    finally:
        await client.close()
    return {"planned": total, "shed": shed, "results": results, "client_cpu_s": cpu,
            "max_late_s": late, "sent_until": sent_until}


def run_step(url: str, headers: dict[str, str], body: bytes | list[bytes], rate: float,
             duration: float, start_wall: float, max_inflight: int = 64, timeout: float = 15.0,
             client_kind: str = "lean", tag: str = "",
             tokens: list[str] | None = None) -> dict[str, Any]:
    """One constant-rate step; returns per-request results and the client's own CPU time.

    `body` is a list of bodies, sent in turn, or one template: if it contains `%N%`, each
    request replaces it with `<tag>n<request number>` (one word). With `tokens`, request i carries
    `Authorization: Bearer tokens[i % len(tokens)]` (writes are rate-limited per key).
    """
    return uvloop.run(_step(url, headers, body, rate, duration, start_wall, max_inflight,
                            timeout, client_kind, tag, tokens))


async def _closed(url: str, headers: dict[str, str], body: bytes | list[bytes], concurrency: int,
                  duration: float, start_wall: float, request_timeout: float,
                  tag: str) -> dict[str, Any]:
    if urlsplit(url).hostname not in LOOPBACK:
        raise ValueError(f"refusing a non-loopback target: {url}")
    results: list[tuple[float, int, float, str | None]] = []
    client = _LeanPost(url, headers, concurrency, request_timeout)
    counter = 0

    async def worker(stop_at: float) -> None:
        nonlocal counter
        while time.time() < stop_at:
            counter += 1
            payload = _body(body, counter, tag)
            sent, began = time.time(), time.perf_counter()
            try:
                status, _ = await client.post(payload, None)
            except Exception:  # timeouts, resets: counted as errors, never retried
                status = -1
            results.append((sent, status, (time.perf_counter() - began) * 1000, None))

    await asyncio.sleep(max(0.0, start_wall - time.time()))
    cpu0 = _cpu_seconds()
    try:
        await asyncio.gather(*(worker(start_wall + duration) for _ in range(concurrency)))
    finally:
        await client.close()
    return {"planned": len(results), "shed": 0, "results": results,
            "client_cpu_s": _cpu_seconds() - cpu0, "max_late_s": 0.0, "sent_until": time.time()}


def run_closed(url: str, headers: dict[str, str], body: bytes | list[bytes], concurrency: int,
               duration: float, start_wall: float, timeout: float = 15.0,
               tag: str = "") -> dict[str, Any]:
    """Flat out: `concurrency` clients, each sending its next request as soon as the last is
    answered, for `duration` seconds. Unlike an open loop far above capacity, the client
    spends CPU only on requests the server takes, so it does not starve the server."""
    return uvloop.run(_closed(url, headers, body, concurrency, duration, start_wall, timeout, tag))


def ignore_sigint() -> None:
    """Worker initializer: Ctrl-C is the parent's to handle (it stops the workers itself)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def warm() -> bool:
    """Imported-and-ready check for a freshly spawned worker."""
    return True
