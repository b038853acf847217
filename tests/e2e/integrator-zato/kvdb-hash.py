from zato.server.service import Service


class Counter(Service):
    def handle(self):
        self.kvdb.conn.hset('counts', 'a', 1)
