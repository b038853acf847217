"""tests/bench/cluster-kv.sh's services: fill a namespace of the
cluster's KV, and time the listing of its keys inside the worker."""
import time

from zato.server.service import Service


class Fill(Service):
    name = 'kvb.fill'

    def handle(self):
        p = self.request.payload
        kv, pad = self.kv.ns(p['ns']), 'x' * 100
        for i in range(p['start'], p['end']):
            kv.set('k%06d' % i, {'i': i, 'pad': pad})
        self.response.payload = {'set': p['end'] - p['start']}


class List(Service):
    name = 'kvb.list'

    def handle(self):
        started = time.perf_counter()
        keys = self.kv.ns(self.request.payload['ns']).keys()
        self.response.payload = {'keys': len(keys), 'seconds': time.perf_counter() - started}
