"""The PEP 249 module over outgoing SQL sessions (what SQLAlchemy's ORM
runs on when a real SQLAlchemy is uploaded), and the choice between the
ORM session and the SDK's own, against a stand-in for the integrator."""

import unittest

import alpharen.integrator as sdk
from alpharen import dbapi, sql
from test_connectors import HostCase


class DBAPI(HostCase):
    def calls(self):
        return [(r['call'], r.get('session')) for r in self.host.requests]

    def test_pep249_surface(self):
        self.assertEqual((dbapi.apilevel, dbapi.paramstyle), ('2.0', 'named'))
        for name in ('Warning', 'Error', 'InterfaceError', 'DatabaseError', 'DataError', 'OperationalError',
                     'IntegrityError', 'InternalError', 'ProgrammingError', 'NotSupportedError'):
            self.assertTrue(issubclass(getattr(dbapi, name), Exception), name)
        self.assertTrue(issubclass(dbapi.IntegrityError, dbapi.DatabaseError))
        with self.assertRaises(dbapi.OperationalError):
            dbapi.connect('nope')

    def test_cursor_and_transaction(self):
        conn = dbapi.connect('crm')
        cur = conn.cursor()
        cur.execute('SELECT * FROM t WHERE id = :id', {'id': 1})
        self.assertEqual([d[0] for d in cur.description], ['id', 'price', 'at', 'doc', 'tag'])
        self.assertEqual(cur.fetchone()[0], 1)
        self.assertIsNone(cur.fetchone())
        cur.executemany('UPDATE t SET a = :a', [{'a': 1}, {'a': 2}])
        self.assertEqual(self.host.requests[-1]['params'], [{'a': 1}, {'a': 2}])
        conn.commit()
        conn.rollback()  # nothing since the commit: no round trip
        conn.close()
        self.assertEqual(self.calls(), [('sql.execute', None), ('sql.execute', 7), ('sql.commit', 7),
                                        ('sql.close', 7)])
        with self.assertRaises(dbapi.InterfaceError):
            conn.cursor()

    def test_errors_keep_their_class(self):
        cur = dbapi.connect('crm').cursor()
        with self.assertRaises(dbapi.IntegrityError) as e:
            cur.execute('INSERT boom')
        self.assertEqual(e.exception.sqlstate, '23505')

    def test_a_failed_first_statement_keeps_its_session_for_rollback(self):
        def host(req):
            self.host.requests.append(req)
            if req['call'] == 'sql.execute':
                return {'ok': False, 'code': 'sql_error', 'sqlstate': '23505', 'error': 'dup', 'session': 3}
            return {'ok': True, 'value': None}
        sdk._host = host
        conn = dbapi.connect('crm')
        with self.assertRaises(dbapi.IntegrityError):
            conn.cursor().execute('INSERT x')
        conn.rollback()
        conn.close()
        self.assertEqual(self.calls(), [('sql.execute', None), ('sql.rollback', 3), ('sql.close', 3)])

    def test_a_session_kept_past_its_call_does_not_reach_the_next_calls(self):
        # The integrator numbers each call's sessions afresh: session 7 of
        # an ended call may be another one of the next call.
        session = sql.SQLConnStore()['crm'].session()
        session.execute('SELECT 1')
        sql.next_call()
        session.commit()
        session.close()
        session.execute('SELECT 2')
        self.assertEqual(self.calls(), [('sql.execute', None), ('sql.execute', None)])

    def test_without_a_real_sqlalchemy_the_session_is_the_sdks(self):
        # Only the SDK's stand-in is importable here.
        self.assertIsNone(sql._orm())
        self.assertIsInstance(sql.SQLConnStore()['crm'].session(), sql.Session)


class StandInDeployCheck(unittest.TestCase):
    def test_imports_beyond_the_stand_in_are_named_at_deploy(self):
        from alpharen import deploycheck
        src = ('from sqlalchemy import text\nfrom sqlalchemy.exc import IntegrityError\n'
               'from sqlalchemy import and_\nfrom sqlalchemy.orm import declarative_base\n'
               'import sqlalchemy.ext.declarative\n')
        problems = deploycheck.scan(src, 'm.py')
        self.assertEqual([line for line, _ in problems], [3, 4, 5])
        self.assertIn("`from sqlalchemy.orm import declarative_base`: only the SDK's small sqlalchemy "
                      "stand-in (text() and exc) is on this node; upload SQLAlchemy's wheel", problems[1][1])
