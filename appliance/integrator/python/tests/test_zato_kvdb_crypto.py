"""self.kvdb.conn's Redis types, self.crypto and self.user_config as a
service calls them: what the worker sends the integrator and what the
service gets back (the integrator's side has Rust tests)."""

import base64
import datetime
import unittest

import alpharen.integrator as sdk
from alpharen import crypto


class FakeHost:
    """Records the requests and answers them from `answers` by call."""

    def __init__(self, **answers):
        self.sent, self.answers = [], answers

    def __call__(self, req):
        self.sent.append(req)
        a = self.answers.get(req['call'])
        return a(req) if callable(a) else a


class Base(unittest.TestCase):
    def host(self, **answers):
        h = FakeHost(**answers)
        old, sdk._host = sdk._host, h
        self.addCleanup(setattr, sdk, '_host', old)
        return h


class Kvdb(Base):
    def test_commands_go_to_the_integrator_as_redis_py_encodes_them(self):
        h = self.host(**{'kv.command': {'ok': True, 'value': 2}})
        conn = sdk.KVDB().conn
        self.assertEqual(conn.hset('user:1', mapping={'name': 'Ann', 'age': 30}), 2)
        self.assertEqual(h.sent[-1], {'call': 'kv.command', 'ns': 'kvdb', 'key': 'user:1',
                                      'cmd': 'hset', 'args': ['name', 'Ann', 'age', '30']})
        conn.hset('h', 'f', b'v')
        self.assertEqual(h.sent[-1]['args'], ['f', 'v'])
        self.assertTrue(conn.hmset('h', {'a': 1.5}))
        self.assertEqual(h.sent[-1]['args'], ['a', '1.5'])
        conn.lpush('q', 'a', 'b')
        self.assertEqual((h.sent[-1]['cmd'], h.sent[-1]['args']), ('lpush', ['a', 'b']))
        conn.expire('q', datetime.timedelta(minutes=1))
        self.assertEqual(h.sent[-1]['args'], [60])
        conn.rpop('q')
        self.assertEqual(h.sent[-1]['args'], [])
        with self.assertRaises(sdk.DataError):
            conn.hset('h', 'f', {'a': 1})
        with self.assertRaises(sdk.DataError):
            conn.rpush('q', None)

    def test_answers_and_refusals(self):
        self.host(**{'kv.command': lambda r: {
            'smembers': {'ok': True, 'value': ['a', 'b']},
            'get': {'ok': True, 'value': {'json': 'text'}},
            'hget': {'ok': False, 'code': 'wrong_type',
                     'error': 'WRONGTYPE Operation against a key holding the wrong kind of value'},
        }[r['cmd']]})
        conn = sdk.KVDB().conn
        self.assertEqual(conn.smembers('s'), {'a', 'b'})
        self.assertEqual(conn.get('k'), 'text')
        with self.assertRaises(sdk.ResponseError) as e:
            conn.hget('k', 'f')
        self.assertIn('WRONGTYPE', str(e.exception))

    def test_unsupported_command_lists_the_supported_ones(self):
        with self.assertRaises(NotImplementedError) as e:
            sdk.KVDB().conn.zadd('k', {'a': 1})
        self.assertIn('`self.kvdb.conn.zadd` is not supported yet; supported: get, set', str(e.exception))
        self.assertIn('hgetall', str(e.exception))


class Crypto(Base):
    # Made by passlib 1.7.4: pbkdf2_sha512.using(rounds=1000, salt_size=16).hash('zato secret ż')
    PASSLIB = ('$pbkdf2-sha512$1000$fG8tpTSmlNIag3Cude7dGw$IO2CRAc/7vP8pCBPhhOXWJrgraTZ5tUxDhw2'
               'fPSe/.WBrLcL9mE9TlD.tyOQPT.VirIs4wGlq0zTdxwzr30CfA')

    def test_hashes_are_passlibs(self):
        c = crypto.Crypto(None)
        self.assertTrue(c.verify_hash('zato secret ż', self.PASSLIB))
        self.assertFalse(c.verify_hash('zato secret z', self.PASSLIB))
        made = c.hash_secret('pw')
        self.assertTrue(made.startswith('$pbkdf2-sha512$120000$'))
        self.assertEqual(len(crypto._ab64_decode(made.split('$')[3])), 64)
        self.assertTrue(c.verify_hash('pw', made))
        with self.assertRaises(ValueError):
            c.verify_hash('pw', 'plain text')
        with self.assertRaises(KeyError):
            c.hash_secret('pw', name='other')

    def test_encrypt_and_decrypt_ask_the_integrator(self):
        h = self.host(**{
            'crypto.encrypt': {'ok': True, 'value': 'gAAAAtoken=='},
            'crypto.decrypt': lambda r: (
                {'ok': True, 'value': base64.b64encode('zażółć'.encode()).decode()}
                if r['token'] == 'gAAAAtoken==' else
                {'ok': False, 'code': 'invalid_token', 'error': 'invalid token'}),
        })
        c = sdk.Service.__new__(sdk.Service)
        sdk.Service.__init__(c)
        self.assertEqual(c.crypto.encrypt('hi'), b'gAAAAtoken==')
        self.assertEqual(h.sent[-1]['data'], base64.b64encode(b'hi').decode())
        self.assertEqual(c.crypto.encrypt(b'hi', needs_str=True), 'gAAAAtoken==')
        self.assertEqual(c.crypto.decrypt(b'zato.secf.gAAAAtoken=='), 'zażółć')
        with self.assertRaises(crypto.InvalidToken):
            c.crypto.decrypt('other')
        self.assertEqual(len(base64.urlsafe_b64decode(c.crypto.generate_key())), 32)
        self.assertEqual(len(c.crypto.generate_secret(as_str=True)), 44)
        self.assertIsInstance(c.crypto.generate_password(), bytes)


class UserConfig(Base):
    def test_read_at_first_use_as_a_bunch_also_as_config(self):
        h = self.host(user_config={'ok': True, 'value': {'crm': {'api': {'url': 'http://x'}}}})
        s = sdk.Service.__new__(sdk.Service)
        sdk.Service.__init__(s)
        self.assertEqual(h.sent, [])
        self.assertEqual(s.user_config.crm.api.url, 'http://x')
        self.assertEqual(s.config.crm.api.url, 'http://x')
        self.assertEqual(len(h.sent), 1)


if __name__ == '__main__':
    unittest.main()
