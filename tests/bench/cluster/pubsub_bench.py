"""Services for tests/bench/cluster-pubsub.sh: a publisher that times its
own publishes and a subscriber that records each delivery in the cluster's
KV with its latency and time in the key, so one `kv list RUN.` reads a
whole run back."""
import time
import uuid

from alpharen.integrator import Service


class Publish(Service):
    """Publishes n messages {run, id, sent} to a topic, one after another
    (each answered once JetStream stored it); says when it started and
    how long the publishes took."""
    name = 'cb.publish'

    def handle(self):
        p = self.request.payload
        t0 = time.time()
        for i in range(p['n']):
            self.publish(p['topic'], {'run': p['run'], 'id': i, 'sent': time.time()})
        self.response.payload = {'published': p['n'], 'started': t0, 'seconds': time.time() - t0}


class Record(Service):
    """Subscriber: key RUN.ID.LATENCY_MS.AT_MS.TAIL per delivery (a
    duplicate is a second key of the same RUN.ID)."""
    name = 'cb.record'

    def handle(self):
        m = self.request.payload
        now = time.time()
        self.kv.ns('cb').set('%s.%d.%.3f.%d.%s' % (m['run'], m['id'], (now - m['sent']) * 1000,
                                                    int(now * 1000), uuid.uuid4().hex[:6]), 1)
