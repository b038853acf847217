"""Services for tests/e2e/cluster-pubsub.sh and tests/bench/cluster-pubsub.sh."""
import os
import time
import uuid

from alpharen.integrator import Service, LockTimeout


class Publish(Service):
    """Publishes n messages with ids start..start+n-1 to a topic."""
    name = 'ps.publish'

    def handle(self):
        p = self.request.payload
        start = p.get('start', 0)
        for i in range(start, start + p['n']):
            self.publish(p['topic'], {'id': i, 'sent': time.time(), 'sleep': p.get('sleep', 0)})
        self.response.payload = {'published': p['n']}


class Record(Service):
    """Subscriber: one key per delivery (message id and a random tail),
    so a duplicate shows as a second key of the same id; the value is the
    publish-to-handler latency in ms."""
    name = 'ps.record'

    def handle(self):
        msg = self.request.payload
        if msg.get('sleep'):
            time.sleep(msg['sleep'])
        self.kv.ns('seen').set('%d.%s' % (msg['id'], uuid.uuid4().hex[:8]),
                               round((time.time() - msg['sent']) * 1000, 3))


class Fail(Service):
    """Subscriber that always fails: its messages end in the DLQ."""
    name = 'ps.fail'

    def handle(self):
        raise RuntimeError('this subscriber always fails')


class LockHold(Service):
    """Takes lock L for `hold` seconds (it lapses after `expires`)."""
    name = 'ps.lock_hold'

    def handle(self):
        p = self.request.payload
        with self.lock('L', timeout=5, expires=p['expires']):
            self.kv.set('lock_holder', os.getpid())
            time.sleep(p['hold'])
        self.response.payload = {'held': True}


class LockTry(Service):
    """Tries lock L for `timeout` seconds."""
    name = 'ps.lock_try'

    def handle(self):
        t0 = time.monotonic()
        try:
            with self.lock('L', timeout=self.request.payload['timeout'], expires=5):
                self.response.payload = {'got': True, 'waited': round(time.monotonic() - t0, 2)}
        except LockTimeout:
            self.response.payload = {'got': False}


class AsyncStart(Service):
    name = 'ps.async_start'

    def handle(self):
        self.response.payload = {'id': self.invoke_async('ps.async_target', self.request.payload)}


class AsyncTarget(Service):
    """invoke_async target: one key per run."""
    name = 'ps.async_target'

    def handle(self):
        self.kv.ns('async').set('%d.%s' % (self.request.payload['n'], uuid.uuid4().hex[:8]), True)
