from contextlib import closing

from alpharen.sql import OperationalError
from zato.server.service import Service


class Probe(Service):
    """SELECT 1 on the connection that follows pgha group main."""
    name = 'pgha.sql.probe'

    def handle(self):
        try:
            with closing(self.outgoing.sql.get('main_db').session()) as session:
                self.response.payload = {'value': session.execute('SELECT 1').scalar()}
        except OperationalError as e:
            self.response.payload = {'error': str(e)}
