"""An HTTPS backend for the dpx proxy tests, on 127.0.0.1: GET anything ->
"tls-ok" on HTTP_PORT, a WebSocket echo on WS_PORT, both with the
certificate CERT and key KEY. Run with Debian's python3 (python3-websockets).
"""
import asyncio
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websockets

HTTP_PORT, WS_PORT, CERT, KEY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"tls-ok\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)


async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server = ThreadingHTTPServer(("127.0.0.1", HTTP_PORT), Handler)
    # A failed handshake (an untrusting client) only drops that connection.
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    async with websockets.serve(echo, "127.0.0.1", WS_PORT, ssl=ctx):
        await asyncio.Future()


asyncio.run(main())
