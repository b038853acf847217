"""Signed and badly signed calls to the reaction engine's agent API.

usage: reaction_auth.py HOST PORT NAME SECRET CASE
CASE: good (GET config, expect 200), replay (the same signed request
twice: 200 then 401), badkey (wrong secret), stale (Date 10 minutes old),
unknown (keyid of an agent that does not exist), events-badkey (a POST of
a matching line with a wrong secret), plain-lease (a well signed lease
call in plaintext), config-body (GET config, then `sealed` or `plain`:
whether the answer is an encrypted envelope), sealed-events (a well
signed events call whose body looks sealed). Prints the status codes,
one a line.
Run with Debian's /usr/bin/python3 (stdlib only).
"""
import base64, email.utils, hashlib, hmac, http.client, json, os, ssl, sys, time

host, port, name, secret, case = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]


def headers(method, path, body, key, keyid, when):
    date = email.utils.formatdate(when, usegmt=True)
    digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
    params = f'("@method" "@path" "date" "content-digest");keyid="{keyid}";alg="hmac-sha256";nonce="{os.urandom(16).hex()}"'
    base = f'"@method": {method}\n"@path": {path}\n"date": {date}\n"content-digest": {digest}\n"@signature-params": {params}'
    sig = base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()
    return {"Date": date, "Content-Digest": digest, "Signature-Input": f"sig1={params}",
            "Signature": f"sig1=:{sig}:", "Content-Type": "application/json"}


def send(method, path, body, h, show=False):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    print(r.status)
    if show:
        try:
            sealed = json.loads(data).get("sealed") == "aes-256-gcm"
        except ValueError:
            sealed = False
        print("sealed" if sealed else "plain")


now = time.time()
cfg = ("GET", "/agent/v1/config", b"")
if case == "good":
    send(*cfg, headers(*cfg, secret, name, now))
elif case == "replay":
    h = headers(*cfg, secret, name, now)
    send(*cfg, h)
    send(*cfg, h)
elif case == "badkey":
    send(*cfg, headers(*cfg, secret + "x", name, now))
elif case == "stale":
    send(*cfg, headers(*cfg, secret, name, now - 600))
elif case == "unknown":
    send(*cfg, headers(*cfg, secret, "host9", now))
elif case == "events-badkey":
    body = json.dumps({"epoch": "forged", "events": [
        {"seq": 1, "path": "/forged", "pattern": "disk", "line": "ERROR disk forged"}]}).encode()
    ev = ("POST", "/agent/v1/events", body)
    send(*ev, headers(*ev, secret + "x", name, now))
elif case == "plain-lease":
    lease = ("POST", "/agent/v1/lease", json.dumps({"wait_ms": 0}).encode())
    send(*lease, headers(*lease, secret, name, now))
elif case == "sealed-events":
    body = json.dumps({"sealed": "aes-256-gcm", "nonce": base64.b64encode(os.urandom(12)).decode(),
                       "data": base64.b64encode(os.urandom(48)).decode()}).encode()
    ev = ("POST", "/agent/v1/events", body)
    send(*ev, headers(*ev, secret, name, now))
elif case == "config-body":
    send(*cfg, headers(*cfg, secret, name, now), show=True)
else:
    sys.exit(f"unknown case {case}")
