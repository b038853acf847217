"""``self.outgoing.amqp.send`` and ``self.request.amqp`` against a
stand-in for the integrator's side of the worker pipe."""

import base64
import json
import unittest

import alpharen.integrator as sdk
from alpharen import amqp, deploycheck


class Host:
    def __init__(self, reply):
        self.reply, self.requests = reply, []

    def __call__(self, req):
        self.requests.append(req)
        return self.reply


class Send(unittest.TestCase):
    def setUp(self):
        self.saved = sdk._host
        amqp.sync({'amqp': [{'name': 'mq'}]})

    def tearDown(self):
        sdk._host = self.saved

    def test_zato_signature_reaches_the_integrator(self):
        sdk._host = host = Host({'ok': True, 'value': True})
        svc = sdk.Service()
        svc.outgoing.amqp.send({'id': 1}, 'mq', 'orders', 'new', properties={'priority': 3},
                               headers={'X-Id': '1'})
        svc.out.amqp.send(b'\x00raw', 'mq', routing_key='q')
        first, second = host.requests
        self.assertEqual((first['call'], first['conn'], first['exchange'], first['routing_key']),
                         ('amqp.send', 'mq', 'orders', 'new'))
        self.assertEqual(json.loads(base64.b64decode(first['body'])), {'id': 1})
        self.assertEqual(first['properties'], {'priority': 3, 'content_type': 'application/json'})
        self.assertEqual(first['headers'], {'X-Id': '1'})
        self.assertEqual((second['exchange'], base64.b64decode(second['body'])), (None, b'\x00raw'))

    def test_an_unconfirmed_send_raises(self):
        sdk._host = Host({'ok': False, 'code': 'amqp_unavailable', 'error': 'not confirmed'})
        with self.assertRaises(amqp.AMQPError) as e:
            sdk.Service().outgoing.amqp.send('x', 'mq', '', 'q')
        self.assertEqual((str(e.exception), e.exception.code), ('not confirmed', 'amqp_unavailable'))

    def test_an_unknown_connection_is_named(self):
        sdk._host = Host({'ok': True})
        with self.assertRaises(amqp.AMQPError) as e:
            sdk.Service().outgoing.amqp.send('x', 'nope', '', 'q')
        self.assertIn("no outgoing AMQP connection is named 'nope' (configured: mq)", str(e.exception))

    def test_the_request_of_a_channel_call(self):
        req = amqp.AMQPRequest({'queue': 'q', 'headers': {'X-Id': '1'}, 'attempt': 2,
                                'properties': {'message_id': 'm1'}}, b'{}')
        self.assertEqual((req.msg.queue, req.msg.body, req.headers['X-Id'], req.attempt,
                          req.properties.message_id), ('q', b'{}', '1', 2, 'm1'))

    def test_deploy_accepts_outgoing_amqp(self):
        src = ('from zato.server.service import Service\nclass A(Service):\n    def handle(self):\n'
               '        self.outgoing.amqp.send("x", "mq", "", "q")\n')
        self.assertEqual(deploycheck.scan(src, 'a.py'), [])
