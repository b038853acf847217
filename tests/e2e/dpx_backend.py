"""A backend for the dpx proxy tests: HTTP on one port, WebSocket echo on
another, on 127.0.0.1 or the address given. Run with Debian's python3
(python3-websockets).

GET /echo...   -> JSON of the method, path and request headers
GET /stream    -> "first" now, "last" once RELEASE_FILE exists (20 s at most)
GET /slow      -> "slow" after 5 s (for response timeouts)
GET /health    -> 200, or 503 while the file in $SICK_FILE exists
POST /upload   -> the number of body bytes received
WS  (ws port)  -> echoes every message
Every HTTP request is logged to stdout as "STATUS REQUEST-LINE".
"""
import asyncio
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websockets

HTTP_PORT, WS_PORT, RELEASE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
BIND = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
SICK_FILE = os.environ.get("SICK_FILE")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log_request(self, code="-", size="-"):
        print(code, self.requestline, flush=True)

    def reply(self, body, ctype="application/json", status=200):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.chunk(b"first\n")
            for _ in range(200):
                if os.path.exists(RELEASE_FILE):
                    break
                time.sleep(0.1)
            self.chunk(b"last\n")
            self.chunk(b"")
            return
        if self.path == "/slow":
            time.sleep(5)
            self.reply(b"slow\n", "text/plain")
            return
        if self.path == "/health":
            sick = SICK_FILE is not None and os.path.exists(SICK_FILE)
            self.reply(b"sick\n" if sick else b"ok\n", "text/plain", 503 if sick else 200)
            return
        body = {"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        self.reply(json.dumps(body).encode())

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self):
        n = 0
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            got = self.rfile.read(min(left, 65536))
            if not got:
                break
            n += len(got)
            left -= len(got)
        self.reply(str(n).encode(), "text/plain")


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main():
    server = ThreadingHTTPServer((BIND, HTTP_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    async with websockets.serve(echo, BIND, WS_PORT):
        await asyncio.Future()


asyncio.run(main())
