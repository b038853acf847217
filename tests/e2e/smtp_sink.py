"""A real SMTP server (aiosmtpd) used as the smarthost in mail tests.

Stores each accepted message as DIR/<n>.eml with X-Sink-From / X-Sink-To
lines first. Recipients whose local part starts with "reject" get 550;
"tempfail" ones get 451. --delay makes DATA slow (to kill the client
mid-delivery). --auth USER:PASS requires AUTH PLAIN/LOGIN with those
(without TLS, on loopback). Run with Debian's /usr/bin/python3
(python3-aiosmtpd).
"""
import argparse, asyncio, itertools, os, signal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

p = argparse.ArgumentParser()
p.add_argument("--host", default="127.0.0.1")
p.add_argument("--port", type=int, required=True)
p.add_argument("--dir", required=True)
p.add_argument("--delay", type=float, default=0.0)
p.add_argument("--auth", help="USER:PASS that AUTH must give")
a = p.parse_args()
os.makedirs(a.dir, exist_ok=True)
counter = itertools.count(len(os.listdir(a.dir)))


class Sink:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        if local.startswith("tempfail"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if a.delay:
            await asyncio.sleep(a.delay)
        n = next(counter)
        tmp = os.path.join(a.dir, f".{n}.tmp")
        with open(tmp, "wb") as f:
            f.write(f"X-Sink-From: {envelope.mail_from}\r\n".encode())
            f.write(f"X-Sink-To: {','.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(envelope.original_content or envelope.content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, os.path.join(a.dir, f"{n}.eml"))
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and f"{data.login.decode()}:{data.password.decode()}" == a.auth
    return AuthResult(success=ok, handled=False)


auth = dict(authenticator=authenticator, auth_required=True, auth_require_tls=False) if a.auth else {}
c = Controller(Sink(), hostname=a.host, port=a.port, data_size_limit=0, enable_SMTPUTF8=True, **auth)
c.start()
print("sink ready", flush=True)
signal.sigwait({signal.SIGTERM, signal.SIGINT})
c.stop()
