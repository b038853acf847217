# Redis hashes and lists through self.kvdb.conn, as Zato users keep
# statistics and work queues in Zato's kvdb.
from zato.server.service import Service


class Counter(Service):
    """Counts visits per page in a hash; the last page in a hash that expires."""

    def handle(self):
        conn = self.kvdb.conn
        page = self.request.input.page
        visits = conn.hincrby('visits', page, 1)
        conn.hset('visits:last', mapping={'page': page, 'count': visits})
        conn.expire('visits:last', 3600)
        self.response.payload = {'visits': visits, 'all': conn.hgetall('visits'),
                                 'last': conn.hget('visits:last', 'count'),
                                 'ttl': conn.ttl('visits:last'), 'type': conn.type('visits')}


class Enqueue(Service):
    def handle_POST(self):
        self.response.payload = {'length': self.kvdb.conn.lpush('jobs', *self.request.input.jobs)}


class Dequeue(Service):
    def handle_GET(self):
        conn = self.kvdb.conn
        job = conn.rpop('jobs')
        self.response.payload = {'job': job, 'left': conn.lrange('jobs', 0, -1), 'length': conn.llen('jobs')}


class Leaderboard(Service):
    def handle(self):
        self.kvdb.conn.zadd('scores', {'ann': 1})
