"""Services for tests/bench/cluster-pubsub.sh: a publisher that times its
own publishes and two subscribers that record each delivery with its
latency and time: cb.note in its member's log (nothing replicated, like
the reference's consumer, which only acks), cb.record in the cluster's
KV (a replicated write per delivery), so one `kv list RUN.` reads a whole
run back."""
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


def record(m):
    """RUN.ID.LATENCY_MS.AT_MS.TAIL of one delivery (a duplicate is a
    second record of the same RUN.ID)."""
    now = time.time()
    return '%s.%d.%.3f.%d.%s' % (m['run'], m['id'], (now - m['sent']) * 1000,
                                 int(now * 1000), uuid.uuid4().hex[:6])


class Record(Service):
    """Subscriber: the record as a key in the cluster's KV."""
    name = 'cb.record'

    def handle(self):
        self.kv.ns('cb').set(record(self.request.payload), 1)


class Note(Service):
    """Subscriber: the record as a line in this member's integrator log."""
    name = 'cb.note'

    def handle(self):
        self.logger.info('cbrec %s', record(self.request.payload))
