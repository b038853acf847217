"""Outgoing SQL sessions and e-mail senders of the SDK, against a stand-in
for the integrator's side of the worker pipe."""

import datetime
import decimal
import importlib.util
import os
import sys
import tempfile
import uuid
import unittest

import alpharen.integrator as sdk
from alpharen import deploycheck, mail, sql


class FakeHost:
    """Answers sql.* requests as the integrator would, and records them."""

    def __init__(self):
        self.requests = []

    def __call__(self, req):
        self.requests.append(req)
        if req['call'] == 'sql.execute':
            if 'boom' in req['sql']:
                return {'ok': False, 'code': 'sql_error', 'sqlstate': '23505',
                        'error': 'outgoing SQL connection "crm": duplicate key'}
            return {'ok': True, 'value': {
                'session': 7, 'columns': ['id', 'price', 'at', 'doc', 'tag'],
                'rows': [[1, {'$': 'dec', 'v': '12.50'}, {'$': 'tstz', 'v': '2024-05-01T10:20:30.000000+00:00'},
                          {'$': 'json', 'v': {'a': [1]}}, [{'$': 'uuid', 'v': '6f1c2a9e-0b3d-4e5f-8a7b-1c2d3e4f5a6b'}]]],
                'rowcount': 1, 'returns_rows': True}}
        return {'ok': True, 'value': None}


class HostCase(unittest.TestCase):
    """The SDK talking to a FakeHost, with the outgoing SQL connection crm."""

    def setUp(self):
        self.host = FakeHost()
        self.saved = sdk._host
        sdk._host = self.host
        sql.sync({'sql': [{'name': 'crm'}]})

    def tearDown(self):
        sdk._host = self.saved


class Sessions(HostCase):
    def test_execute_rows_and_the_session_lifecycle(self):
        svc = sdk.Service()
        from contextlib import closing
        with closing(svc.outgoing.sql.get('crm').session()) as session:
            result = session.execute('SELECT * FROM t WHERE id = :id', {'id': decimal.Decimal('1.5')})
            row = result.fetchone()
            self.assertEqual(row[0], 1)
            self.assertEqual(row['price'], decimal.Decimal('12.50'))
            self.assertEqual(row.at, datetime.datetime(2024, 5, 1, 10, 20, 30, tzinfo=datetime.timezone.utc))
            self.assertEqual(dict(row)['doc'], {'a': [1]})
            self.assertEqual(row.tag, [uuid.UUID('6f1c2a9e-0b3d-4e5f-8a7b-1c2d3e4f5a6b')])
            self.assertIsNone(result.fetchone())
            session.execute('UPDATE t SET a = %s', (b'\x00',))
            session.commit()
        calls = [(r['call'], r.get('session')) for r in self.host.requests]
        self.assertEqual(calls, [('sql.execute', None), ('sql.execute', 7), ('sql.commit', 7), ('sql.close', 7)])
        self.assertEqual(self.host.requests[0]['params'], {'id': {'$': 'dec', 'v': '1.5'}})
        self.assertEqual(self.host.requests[1]['params'], [{'$': 'bytes', 'v': 'AA=='}])

    def test_errors_are_sqlalchemy_and_dbapi_classes(self):
        from sqlalchemy import exc, text
        session = sql.SQLConnStore()['crm'].session()
        with self.assertRaises(exc.IntegrityError) as e:
            session.execute(text('INSERT boom :a').bindparams(a=1))
        self.assertEqual(e.exception.sqlstate, '23505')
        self.assertEqual(self.host.requests[0]['params'], {'a': 1})
        with self.assertRaises(KeyError):
            sql.SQLConnStore()['nope']

    def test_the_sqlalchemy_stand_in_loses_to_a_real_package(self):
        spec = importlib.util.find_spec('sqlalchemy')
        self.assertIn('shim', spec.origin)
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, 'sqlalchemy'))
            with open(os.path.join(d, 'sqlalchemy', '__init__.py'), 'w') as f:
                f.write('REAL = True\n')
            saved = {k: v for k, v in sys.modules.items() if k.split('.')[0] == 'sqlalchemy'}
            for k in saved:
                del sys.modules[k]
            sys.path.append(d)
            try:
                import sqlalchemy
                self.assertTrue(getattr(sqlalchemy, 'REAL', False), sqlalchemy.__file__)
            finally:
                sys.path.remove(d)
                for k in [k for k in sys.modules if k.split('.')[0] == 'sqlalchemy']:
                    del sys.modules[k]
                sys.modules.update(saved)


class Mail(unittest.TestCase):
    def test_message_headers_and_envelope(self):
        msg = mail.SMTPMessage(to='a@example.net, B <b@example.net>', subject='Zażółć', body='<b>x</b>',
                               cc=['c@example.net'], bcc='hidden@example.net', is_html=True)
        msg.attach('r.csv', 'a,b\n')
        out, rcpts = mail.build(msg, 'svc@node')
        self.assertEqual(rcpts, ['a@example.net', 'b@example.net', 'c@example.net', 'hidden@example.net'])
        text = out.as_string()
        self.assertNotIn('hidden@', text)
        self.assertIn('Cc: c@example.net', text)
        self.assertIn('text/html', text)
        self.assertIn('filename="r.csv"', text)
        from zato.common.api import SMTPMessage
        self.assertIs(SMTPMessage, mail.SMTPMessage)

    def test_unknown_sender_is_named(self):
        mail.sync({'smtp': [{'name': 'alerts', 'from': 'a@n'}], 'mail_port': 1})
        with self.assertRaises(KeyError) as e:
            sdk.Service().email.smtp.get('other')
        self.assertIn('alerts', str(e.exception))
        with self.assertRaises(mail.MailError) as e:
            sdk.Service().email.smtp.get('alerts').conn.send(mail.SMTPMessage(to='x@y', body='b'))
        self.assertIn("'alerts'", str(e.exception))


class DeployCheck(unittest.TestCase):
    def test_sql_email_and_text_import_pass(self):
        src = ('from sqlalchemy import text\nfrom zato.common.api import SMTPMessage\n'
               'from zato.server.service import Service\n'
               'class S(Service):\n    def handle(self):\n'
               "        self.outgoing.sql.get('crm').session()\n        self.email.smtp.get('a')\n")
        self.assertEqual(deploycheck.scan(src, 's.py'), [])


class WebSocketPushes(unittest.TestCase):
    """self.wsx: pushes to a WebSocket channel's clients as wsx.send requests."""

    def setUp(self):
        from alpharen import wsx
        self.wsx = wsx
        self.requests = []

        def host(req):
            self.requests.append(req)
            return {'ok': True, 'value': 0 if req.get('client_id') == 'gone' else 2}
        self.saved = sdk._host
        sdk._host = host
        wsx.sync({'wsx': ['chat']})

    def tearDown(self):
        sdk._host = self.saved

    def test_broadcast_send_and_the_calling_client(self):
        svc = sdk.Service()
        self.assertIsNone(svc.wsx.client)
        self.assertEqual(svc.wsx.channel['chat'].broadcast({'a': 1}), 2)
        self.assertTrue(svc.wsx.send('hi', 'chat', client_id='c1'))
        self.assertFalse(svc.wsx.channel['chat'].send(b'\x01', 'gone'))
        self.assertEqual(self.requests, [
            {'call': 'wsx.send', 'channel': 'chat', 'data': {'json': {'a': 1}}},
            {'call': 'wsx.send', 'channel': 'chat', 'client_id': 'c1', 'data': {'json': 'hi'}},
            {'call': 'wsx.send', 'channel': 'chat', 'client_id': 'gone', 'data': {'b64': 'AQ=='}},
        ])
        svc.wsx = self.wsx.WSX(sdk._call, {'client_id': 'c9', 'channel': 'chat'})
        self.assertEqual(svc.wsx.client_id, 'c9')
        svc.wsx.client.send('you')
        self.assertEqual(self.requests[-1]['client_id'], 'c9')

    def test_an_unknown_channel_is_a_key_error_as_in_zato(self):
        svc = sdk.Service()
        with self.assertRaises(KeyError) as e:
            svc.wsx.channel['nope']
        self.assertIn('No such WebSocket channel `nope`', str(e.exception))
        self.assertIsNone(svc.wsx.channel.get('nope'))
        self.assertEqual(self.requests, [])

    def test_deploy_check_accepts_self_wsx(self):
        src = ('from zato.server.service import Service\n'
               'class S(Service):\n    def handle(self):\n'
               "        self.wsx.channel['chat'].broadcast('x')\n")
        self.assertEqual(deploycheck.scan(src, 's.py'), [])
