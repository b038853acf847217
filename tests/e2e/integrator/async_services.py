"""Services for tests/e2e/integrator-async.sh and tests/bench/integrator-async.sh."""
import os
import time

from alpharen.integrator import Service, QueueFull


class KvOp(Service):
    """Drives the KV store from HTTP: {"op": ..., "key": ..., "value": ..., "ttl": ...}."""
    name = 't.kv'

    def handle(self):
        p = self.request.payload or {}
        op, key = p.get('op'), p.get('key')
        kv = self.kv.ns(p.get('ns') or 'default')
        if op == 'set':
            out = kv.set(key, p.get('value'), ttl=p.get('ttl'))
        elif op == 'get':
            out = kv.get(key)
        elif op == 'bytes':
            kv.set(key, b'\x00\xffraw')
            out = kv.get(key) == b'\x00\xffraw'
        elif op == 'keys':
            out = kv.keys(p.get('prefix') or '')
        elif op == 'redis':
            c = self.kvdb.conn
            c.set('r1', 'v1', ex=30)
            out = [c.get('r1'), c.set('r1', 'x', nx=True), c.delete('r1'), c.get('r1'),
                   self.cache.default.set('c1', {'a': 1}, expiry=30), self.cache.default.get('c1')]
        elif op == 'incr':
            # CAS race: count with compare-and-set, n times.
            for _ in range(int(p.get('n', 100))):
                kv.incr(key)
            out = os.getpid()
        else:
            out = 'unknown op'
        self.response.payload = {'result': out, 'pid': os.getpid()}


class JobTick(Service):
    """Run by jobs: counts runs per job in KV."""
    name = 'job.tick'

    def handle(self):
        job = self.request.meta.get('job', 'none')
        self.kv.ns('jobs').incr(job)


class Publish(Service):
    """Publishes n messages with ids start..start+n-1 to a topic."""
    name = 't.publish'

    def handle(self):
        p = self.request.payload
        ids = []
        try:
            for i in range(p.get('start', 0), p.get('start', 0) + p['n']):
                self.publish(p['topic'], {'id': i, 'sent': time.time(), 'sleep': p.get('sleep', 0)})
                ids.append(i)
        except QueueFull as e:
            self.response.payload = {'published': len(ids), 'full': str(e)}
            return
        self.response.payload = {'published': len(ids)}


class Record(Service):
    """Subscriber: records each message id (and the delivery latency)."""
    name = 'sub.record'

    def handle(self):
        msg = self.request.payload
        if msg.get('sleep'):
            time.sleep(msg['sleep'])
        self.kv.ns('seen').set(str(msg['id']), round((time.time() - msg['sent']) * 1000, 3))


class Fail(Service):
    """Subscriber that always fails: its messages end in the DLQ."""
    name = 'sub.fail'

    def handle(self):
        raise RuntimeError('this subscriber always fails')


class Slow(Service):
    name = 'sub.slow'

    def handle(self):
        time.sleep(0.5)


class Async(Service):
    """invoke_async target: records its payload."""
    name = 't.async_target'

    def handle(self):
        self.kv.ns('async').set(str(self.request.payload['n']), True)


class AsyncStart(Service):
    name = 't.async'

    def handle(self):
        self.response.payload = {'id': self.invoke_async('t.async_target', self.request.payload)}


class LockHold(Service):
    """Takes lock L (expires after 3 s) and hangs holding it."""
    name = 't.lock_hold'

    def handle(self):
        lk = self.lock('L', timeout=1, expires=3)
        lk.acquire()
        self.kv.set('lock_holder', os.getpid())
        time.sleep(60)


class LockTry(Service):
    name = 't.lock_try'

    def handle(self):
        t0 = time.time()
        with self.lock('L', timeout=float((self.request.payload or {}).get('timeout', 10)), expires=5):
            waited = time.time() - t0
        self.response.payload = {'waited': round(waited, 3)}


class KvBench(Service):
    """n KV set+get pairs through self.kv; with redis=1 the same through
    redis-py against a local redis-server, from this same worker."""
    name = 'bench.kv'

    def handle(self):
        p = self.request.payload
        n = int(p.get('n', 2000))
        out = {}
        t0 = time.perf_counter()
        for i in range(n):
            self.kv.set('b%d' % i, i)
        t1 = time.perf_counter()
        for i in range(n):
            self.kv.get('b%d' % i)
        t2 = time.perf_counter()
        out['alpharen'] = {'set_ops': n / (t1 - t0), 'get_ops': n / (t2 - t1)}
        if p.get('redis_port'):
            import sys
            sys.path.append('/usr/lib/python3/dist-packages')
            import redis
            r = redis.Redis(host='127.0.0.1', port=int(p['redis_port']))
            t0 = time.perf_counter()
            for i in range(n):
                r.set('b%d' % i, i)
            t1 = time.perf_counter()
            for i in range(n):
                r.get('b%d' % i)
            t2 = time.perf_counter()
            out['redis'] = {'set_ops': n / (t1 - t0), 'get_ops': n / (t2 - t1)}
        self.response.payload = out
