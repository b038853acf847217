# Which session outgoing SQL gives: the SDK's text-SQL one before a real
# SQLAlchemy is uploaded, SQLAlchemy's ORM Session after.
from contextlib import closing

from zato.server.service import Service


class SessionKind(Service):
    name = 'orm.session-kind'

    def handle(self):
        with closing(self.outgoing.sql.get('hotel').session()) as session:
            self.response.payload = {
                'session': '%s.%s' % (type(session).__module__, type(session).__name__),
                'one': session.execute('SELECT 1 AS one').scalar()}
