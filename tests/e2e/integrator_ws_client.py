"""WebSocket client of tests/e2e/integrator-websocket.sh (Debian's
python3-websockets). STEP URL [ARGS...]; URL is ws://... (direct) or
wss://HOST:PORT/... (through the node's proxy, connected to 127.0.0.1
with SNI HOST, certificate not checked). Prints what it checked; exits
non-zero with the reason when a check fails. Every wait is bounded."""
import asyncio
import json
import socket
import ssl
import sys
import urllib.parse
import urllib.request

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

KEY = {'X-API-Key': 'ws-test-key-0123456789'}
WAIT = 20


def connect(url, headers=None):
    u = urllib.parse.urlsplit(url)
    kw = {'extra_headers': headers or {}, 'open_timeout': WAIT}
    if u.scheme == 'wss':
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        kw.update(ssl=ctx, server_hostname=u.hostname,
                  sock=socket.create_connection(('127.0.0.1', u.port), timeout=WAIT))
    return websockets.connect(url, **kw)


async def recv_json(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), WAIT))


async def call(ws, msg):
    await ws.send(json.dumps(msg))
    return await recv_json(ws)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={'content-type': 'application/json'})
    with urllib.request.urlopen(req, timeout=WAIT) as r:
        return json.loads(r.read())


def check(cond, what):
    if not cond:
        sys.exit('FAIL: ' + what)


async def echo(url):
    async with connect(url, KEY) as ws:
        a = await call(ws, {'n': 1})
        check(a['echo'] == {'n': 1} and a['channel'] == 'chat' and a['type'] == 'web-socket'
              and len(a['client_id']) == 24, 'text echo: %r' % a)
        await ws.send(b'{"n": 2}')
        raw = await asyncio.wait_for(ws.recv(), WAIT)
        check(isinstance(raw, bytes) and json.loads(raw)['echo'] == {'n': 2}, 'binary echo: %r' % raw)
        bad = await call(ws, {'op': 'boom'})
        check('boom as asked' in bad.get('error', '') and bad.get('cid'), 'a failing call\'s answer: %r' % bad)
        again = await call(ws, {'n': 3})
        check(again['echo'] == {'n': 3}, 'after an error the connection serves on: %r' % again)
        print('echo: text -> text, binary -> binary, a failing call -> %r, connection open' % bad['error'])


async def refused(url):
    for headers, what in ((None, 'no key'), ({'X-API-Key': 'wrong'}, 'a wrong key')):
        try:
            async with connect(url, headers):
                sys.exit('FAIL: upgrade with %s accepted' % what)
        except InvalidStatusCode as e:
            check(e.status_code == 401, 'upgrade with %s: %s' % (what, e.status_code))
    print('upgrade without a key and with a wrong key: 401')


async def push(url, push_url):
    async with connect(url, KEY) as a, connect(url, KEY) as b:
        ida = (await call(a, {'who': 'a'}))['client_id']
        idb = (await call(b, {'who': 'b'}))['client_id']
        check(ida != idb, 'two clients, one id')
        sent = post(push_url, {'msg': {'hello': 'all'}})
        check(sent == {'sent': 2}, 'broadcast answer: %r' % sent)
        for ws in (a, b):
            got = await recv_json(ws)
            check(got == {'hello': 'all'}, 'broadcast received: %r' % got)
        sent = post(push_url, {'msg': 'just-a', 'client_id': ida})
        check(sent == {'sent': True}, 'push to one answer: %r' % sent)
        got = await asyncio.wait_for(a.recv(), WAIT)
        check(got == 'just-a', 'push to a: %r' % got)
        post(push_url, {'msg': 'marker'})
        got = await asyncio.wait_for(b.recv(), WAIT)
        check(got == 'marker', 'b got %r before the next broadcast (the push to a leaked)' % got)
        await asyncio.wait_for(a.recv(), WAIT)
        sent = post(push_url, {'msg': 'x', 'client_id': 'no-such-client'})
        check(sent == {'sent': False}, 'push to an unknown client: %r' % sent)
        first = await call(a, {'op': 'push-me'})
        second = await recv_json(a)
        check(first == {'pushed_to': ida} and second['client_id'] == ida,
              'self.wsx.client.send before the answer: %r then %r' % (first, second))
    print('broadcast reached both clients, a push to one only it, an unknown id answered False, '
          'self.wsx.client.send came before the answer')


async def oversized(url, limit):
    async with connect(url, KEY) as ws:
        await ws.send('x' * (int(limit) + 1))
        try:
            got = await asyncio.wait_for(ws.recv(), WAIT)
            sys.exit('FAIL: an oversized message was answered: %r' % got[:80])
        except ConnectionClosed as e:
            check(e.rcvd is not None, 'closed without a close frame')
            print('%d %s' % (e.rcvd.code, e.rcvd.reason))


async def idle(url):
    async with connect(url) as ws:
        try:
            got = await asyncio.wait_for(ws.recv(), WAIT)
            sys.exit('FAIL: got %r instead of a close' % got)
        except ConnectionClosed as e:
            check(e.rcvd is not None, 'closed without a close frame')
            print('%d %s' % (e.rcvd.code, e.rcvd.reason))


STEPS = {'echo': echo, 'refused': refused, 'push': push, 'oversized': oversized, 'idle': idle}
asyncio.run(STEPS[sys.argv[1]](*sys.argv[2:]))
