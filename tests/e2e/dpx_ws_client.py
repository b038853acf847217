"""WebSocket echo through the node's HTTPS proxy: connects to ADDR:PORT
(127.0.0.1 unless given) with SNI and Host HOST, sends a message, prints
the echo."""
import asyncio
import socket
import ssl
import sys

import websockets

PORT, HOST, PATH, MESSAGE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ADDR = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"


async def main():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    sock = socket.create_connection((ADDR, PORT), timeout=10)
    async with websockets.connect(
        f"wss://{HOST}:{PORT}{PATH}", ssl=ctx, sock=sock, server_hostname=HOST, open_timeout=10
    ) as ws:
        await ws.send(MESSAGE)
        print(await asyncio.wait_for(ws.recv(), 10))


asyncio.run(main())
