#!/usr/bin/python3
"""ws-echo: the services gvpod's dev-access tests proxy to (images/devbox).

    ws-echo [--bind ADDR] [--port 8765] [--http-port 8766]

--port (python3-websockets, the 10.x API of Debian bookworm):
  GET /      an HTML page whose script opens a WebSocket to /echo on the
             same host, sends ping-<random> and, when the echo returns,
             writes "echo ok: <text>" into <p id=result> and sets
             document.title to "echo ok" ("echo failed" on an error)
  /echo      a WebSocket echoing every message (text and binary) for as
             long as the client keeps it open: no idle timeout, no pings
--http-port (stdlib ThreadingHTTPServer, HTTP/1.1 with keep-alive):
  GET /host       JSON of the request's Host, X-Forwarded-Host,
                  X-Forwarded-For and X-Forwarded-Proto (null when absent)
  GET /sse        text/event-stream, chunked: "data: 1" .. "data: 5", one
                  every 300 ms, each flushed on its own
  POST /body      the request body (Content-Length or chunked) echoed back,
                  its length in X-Body-Length
  GET /big?n=N    N bytes of "x" (0 <= N <= 1 GiB)

--bind 127.0.0.1 keeps both on loopback (services a router must reach
inside the pod). Once both listen, one line "ws-echo: listening ..." goes
to stdout. SIGTERM and SIGINT end it at once (it may be a pod's PID 1).
"""

import argparse
import asyncio
import http
import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

import websockets

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>echo pending</title></head>
<body>
<h1>ws-echo</h1>
<p id=result>waiting</p>
<script>
(function () {
  var result = document.getElementById('result');
  var sent = 'ping-' + Math.random().toString(36).slice(2);
  var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/echo');
  var done = false;
  function fail() {
    if (done) return;
    done = true;
    result.textContent = 'echo failed';
    document.title = 'echo failed';
  }
  ws.onopen = function () { ws.send(sent); };
  ws.onmessage = function (ev) {
    if (done) return;
    if (ev.data !== sent) { fail(); return; }
    done = true;
    result.textContent = 'echo ok: ' + ev.data;
    document.title = 'echo ok';
  };
  ws.onerror = fail;
  ws.onclose = function () { if (!done) fail(); };
}());
</script>
</body></html>
"""

MAX_BIG = 1 << 30
MAX_BODY = 256 << 20


async def echo(ws, path=None):
    # One-argument handlers are the websockets >= 10.1 form; the path
    # parameter keeps older 10.0 happy too.
    async for msg in ws:
        await ws.send(msg)


def page_or_404(path, headers):
    """Plain HTTP on the WebSocket port: the page on /, /echo goes on to
    the handshake, anything else is a 404."""
    route = urllib.parse.urlsplit(path).path
    if route == "/echo":
        return None
    if route == "/":
        body = PAGE.encode()
        return (
            http.HTTPStatus.OK,
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
            ],
            body,
        )
    body = b"not found: only / and /echo here\n"
    return (http.HTTPStatus.NOT_FOUND, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))], body)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ws-echo"

    def log_message(self, fmt, *args):
        pass

    def send_small(self, code, ctype, body, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, code, text):
        self.send_small(code, "text/plain", (text + "\n").encode())

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path == "/host":
            h = {
                k: self.headers.get(k)
                for k in ("Host", "X-Forwarded-Host", "X-Forwarded-For", "X-Forwarded-Proto")
            }
            self.send_small(200, "application/json", json.dumps(h).encode())
        elif u.path == "/sse":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(1, 6):
                if i > 1:
                    time.sleep(0.3)
                ev = f"data: {i}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        elif u.path == "/big":
            q = urllib.parse.parse_qs(u.query)
            try:
                n = int(q.get("n", ["0"])[0])
            except ValueError:
                n = -1
            if not 0 <= n <= MAX_BIG:
                self.error(400, f"bad n: want 0..{MAX_BIG} bytes")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            block = b"x" * 65536
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        else:
            self.error(404, "not found: /host, /sse, /big?n=BYTES (GET), /body (POST)")

    def do_HEAD(self):
        self.error(405, "use GET")

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != "/body":
            self.error(404, "not found: POST /body only")
            return
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            self.error(400, f"bad body: {e}")
            return
        self.send_small(200, "application/octet-stream", body, [("X-Body-Length", str(len(body)))])

    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                if not line.endswith(b"\n"):
                    raise ValueError("truncated chunk size line")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ValueError("bad chunk size") from None
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise ValueError("more than 256 MiB")
                data = self.rfile.read(size)
                if len(data) != size or self.rfile.read(2) != b"\r\n":
                    raise ValueError("truncated chunk")
                parts.append(data)
        try:
            n = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            raise ValueError("bad Content-Length") from None
        if not 0 <= n <= MAX_BODY:
            raise ValueError("Content-Length out of range")
        data = self.rfile.read(n)
        if len(data) != n:
            raise ValueError("truncated body")
        return data


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


async def main(args):
    httpd = Server((args.bind, args.http_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    async with websockets.serve(
        echo,
        args.bind,
        args.port,
        process_request=page_or_404,
        ping_interval=None,
        ping_timeout=None,
        close_timeout=1,
        max_size=16 << 20,
    ):
        print(
            f"ws-echo: listening on {args.bind}:{args.port} (websocket) and {args.bind}:{args.http_port} (http)",
            flush=True,
        )
        await asyncio.Future()


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="ws-echo", description="WebSocket and HTTP echo services for gvpod's dev-access tests")
    p.add_argument("--bind", default="0.0.0.0", help="address both servers listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8765, help="WebSocket port: GET / page, /echo (default 8765)")
    p.add_argument("--http-port", type=int, default=8766, help="HTTP port: /host /sse /body /big (default 8766)")
    a = p.parse_args()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: os._exit(0))
    try:
        asyncio.run(main(a))
    except OSError as e:
        sys.exit(f"ws-echo: cannot listen on {a.bind}: {e.strerror or e}")
