#!/usr/bin/env python3
"""Measures how long a mention takes to reach the mentioned user, over SSE and over
polling, against a running Switchyard (loopback only; it stops by itself).

    python3 scripts/measure_delivery.py [--base http://127.0.0.1:8000] [--posts 40]

It signs up two fresh users, then for each transport posts mentions from one at
random moments and times, from the moment each post is sent, when it arrives for the
other: on an open SSE stream, or in the answer of a poller that behaves like htmx
(`every N ms`, one request at a time, cursor carried over). Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import random
import re
import statistics
import threading
import time
import urllib.parse

BASE_DEFAULT = "http://127.0.0.1:8000"


class Session:
    """A cookie-keeping HTTP client for one user."""

    def __init__(self, base: str) -> None:
        parsed = urllib.parse.urlsplit(base)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: dict | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        all_headers = dict(headers or {})
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body)
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=data, headers=all_headers)
        response = conn.getresponse()
        self._keep_cookies(response)
        payload = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), payload

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key.strip()] = val.strip()


def sign_up(base: str, handle: str) -> Session:
    session = Session(base)
    status, _, _ = session.request("POST", "/accounts/signup", {
        "email": f"{handle}@example.com", "handle": handle, "password": "measure-delivery"})
    if status != 303:
        raise SystemExit(f"sign-up of {handle} failed with {status}")
    return session


def cursor_of(html: str) -> int:
    match = re.search(r'id="lobby-ctl"[^>]*data-cursor="(\d+)"', html)
    if not match:
        raise SystemExit("no lobby cursor in the page")
    return int(match.group(1))


def marks(text: str) -> list[str]:
    return re.findall(r"measure-([0-9a-f]{12})", text)


def post_at_random(author: Session, target: str, count: int, spread: float,
                   sent: dict[str, float]) -> None:
    for _ in range(count):
        time.sleep(random.uniform(0.2, spread))
        mark = f"{random.getrandbits(48):012x}"
        sent[mark] = time.monotonic()
        author.request("POST", "/posts/create/", {"body": f"@{target} measure-{mark}"})


def over_sse(base: str, author: Session, reader: Session, target: str, count: int
             ) -> list[float]:
    status, _, page = reader.request("GET", "/posts/lobby/")
    cursor = cursor_of(page.decode())
    conn = http.client.HTTPConnection(reader.host, reader.port, timeout=60)
    cookie = "; ".join(f"{k}={v}" for k, v in reader.cookies.items())
    conn.request("GET", f"/posts/lobby/stream?after={cursor}",
                 headers={"Cookie": cookie, "Accept": "text/event-stream"})
    stream = conn.getresponse()
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    poster = threading.Thread(target=post_at_random, args=(author, target, count, 0.6, sent))
    poster.start()
    while len(arrived) < count:
        line = stream.readline().decode()
        if not line:
            break
        for mark in marks(line):
            arrived.setdefault(mark, time.monotonic())
    poster.join()
    conn.close()
    return [arrived[m] - sent[m] for m in arrived if m in sent]


def over_polling(base: str, author: Session, reader: Session, target: str, count: int,
                 interval: float) -> tuple[list[float], int, int]:
    _, _, page = reader.request("GET", "/posts/lobby/")
    cursor = cursor_of(page.decode())
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    requests = empty = 0
    spread = max(0.6, interval)
    poster = threading.Thread(target=post_at_random, args=(author, target, count, spread, sent))
    poster.start()
    deadline = time.monotonic() + count * spread * 2 + 30
    while len(arrived) < count and time.monotonic() < deadline:
        time.sleep(interval)
        status, _, body = reader.request("GET", f"/posts/lobby/poll?after={cursor}",
                                         headers={"HX-Request": "true"})
        requests += 1
        if status == 204:
            empty += 1
            continue
        text = body.decode()
        now = time.monotonic()
        for mark in marks(text):
            arrived.setdefault(mark, now)
        cursor = cursor_of(text)
    poster.join()
    return [arrived[m] - sent[m] for m in arrived if m in sent], requests, empty


def summary(name: str, delays: list[float]) -> str:
    ms = sorted(d * 1000 for d in delays)
    if not ms:
        return f"{name}: no deliveries"
    p = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return (f"{name}: n={len(ms)} p50={p(0.5):.1f} ms p95={p(0.95):.1f} ms "
            f"max={ms[-1]:.1f} ms mean={statistics.mean(ms):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=BASE_DEFAULT)
    parser.add_argument("--posts", type=int, default=40)
    parser.add_argument("--poll-ms", type=int, default=2000,
                        help="the poller's interval; match the server's --poll-ms")
    args = parser.parse_args()
    if urllib.parse.urlsplit(args.base).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("this measures a local server only")

    tag = f"{random.getrandbits(24):06x}"
    author, reader = sign_up(args.base, f"ada{tag}"), sign_up(args.base, f"bob{tag}")
    print(summary("sse", over_sse(args.base, author, reader, f"bob{tag}", args.posts)))
    delays, requests, empty = over_polling(args.base, author, reader, f"bob{tag}",
                                           args.posts, args.poll_ms / 1000)
    print(summary(f"polling every {args.poll_ms} ms", delays)
          + f" requests={requests} empty(204)={empty}")


if __name__ == "__main__":
    main()
