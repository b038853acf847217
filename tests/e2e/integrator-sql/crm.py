# A service module written as for Zato: outgoing SQL through a named
# connection with SQLAlchemy's text(), and mail through a named SMTP sender.
from contextlib import closing

from sqlalchemy import text
from zato.common.api import SMTPMessage
from zato.server.service import Service


class Customers(Service):
    name = 'crm.customers'

    def handle_POST(self):
        req = self.request.payload
        with closing(self.outgoing.sql.get('crm').session()) as session:
            row = session.execute(
                text('INSERT INTO customers (name, balance, tags, meta, photo) '
                     'VALUES (:name, :balance, :tags, :meta, :photo) RETURNING id, created_at'),
                {'name': req['name'], 'balance': req.get('balance', '0'), 'tags': req.get('tags', []),
                 'meta': req.get('meta', {}), 'photo': req.get('photo', '').encode()}).first()
            session.commit()
        self.response.status_code = 201
        self.response.payload = {'id': row.id, 'created_at': row['created_at'].isoformat()}

    def handle_GET(self):
        name = self.request.http.GET.get('name')
        with closing(self.outgoing.sql.get('crm').session()) as session:
            result = session.execute('SELECT id, name, balance, tags, meta, photo, active, created_at, ref '
                                     'FROM customers WHERE name = %(name)s ORDER BY id', {'name': name})
            rows = result.fetchall()
        self.response.payload = [{
            'id': r[0], 'name': r.name, 'balance': str(r['balance']), 'balance_type': type(r.balance).__name__,
            'tags': r.tags, 'meta': r.meta, 'photo': r.photo.decode(), 'active': r.active,
            'created_at_type': type(r.created_at).__name__, 'ref_type': type(r.ref).__name__,
        } for r in rows]


class Count(Service):
    name = 'crm.count'

    def handle(self):
        with closing(self.outgoing.sql.get('crm').session()) as session:
            n = session.execute(text('SELECT count(*) FROM customers')).scalar()
            # Not committed: the close rolls this back.
            session.execute(text("INSERT INTO customers (name) VALUES ('never')"))
        self.response.payload = {'count': n}


class Tls(Service):
    name = 'crm.tls'

    def handle(self):
        conn = self.request.http.GET.get('conn')
        with closing(self.outgoing.sql.get(conn).session()) as session:
            on = session.execute('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()').scalar()
        self.response.payload = {'ssl': on}


class Notify(Service):
    name = 'crm.notify'

    def handle(self):
        req = self.request.payload
        msg = SMTPMessage()
        msg.to = req['to']
        msg.bcc = req.get('bcc')
        msg.subject = req['subject']
        msg.body = 'Customer report'
        msg.attach('report.csv', 'id,name\n1,Ann\n')
        self.email.smtp.get('alerts').conn.send(msg)
        self.response.payload = {'queued': True}
