"""Zato 3.2's dataclass Models as SimpleIO and ``self.commands``, in the
shapes of public Zato services (a GetClient with request and response
models; curl through ``self.commands.invoke``)."""

import json
import threading
import unittest
from dataclasses import dataclass

import alpharen.integrator as sdk
from alpharen import deploycheck, sio
from zato.server.commands import CommandResult
from zato.server.service import Model


@dataclass(init=False)
class GetClientRequest(Model):
    client_id: int
    segment: 'str' = 'RNZ'


@dataclass(init=False)
class GetClientResponse(Model):
    name: str
    email: str


class Sio:
    input = GetClientRequest
    output = GetClientResponse


class Models(unittest.TestCase):
    def test_input_is_an_instance_typed_by_its_annotations(self):
        got = sio.parse_input(Sio, {'client_id': '42'}, {})
        self.assertIsInstance(got, GetClientRequest)
        self.assertEqual(got.client_id, 42)
        self.assertEqual(got.segment, 'RNZ')
        self.assertEqual(got['client_id'], 42)
        self.assertEqual(got.get('nope'), None)

    def test_missing_and_invalid_fields_are_named_in_one_error(self):
        with self.assertRaises(sio.InputError) as e:
            sio.parse_input(Sio, {'segment': 'x'}, {})
        self.assertEqual(str(e.exception), 'Missing required input element: client_id')
        with self.assertRaises(sio.InputError) as e:
            sio.parse_input(Sio, {'client_id': 'abc'}, {})
        self.assertEqual(str(e.exception), 'Invalid input element: client_id (Int expected)')

    def test_a_model_payload_is_sent_as_its_fields(self):
        r = GetClientResponse()
        r.name, r.email = 'Jane Doe', 'hello@example.com'
        self.assertEqual(json.loads(json.dumps(r, default=sio.output_value)),
                         {'name': 'Jane Doe', 'email': 'hello@example.com'})
        self.assertEqual(json.loads(r.to_json())['name'], 'Jane Doe')

    def test_declared_elements_for_openapi(self):
        self.assertEqual([(type(e).__name__, e.name, req) for e, req in sio.declared(Sio, 'input')],
                         [('Int', 'client_id', True), ('Text', 'segment', False)])

    def test_deploy_check_accepts_model_and_commands(self):
        src = ('from dataclasses import dataclass\n'
               'from zato.server.commands import CommandResult\n'
               'from zato.server.service import Model, Service\n')
        self.assertEqual(deploycheck.scan(src, 'm.py'), [])


class Commands(unittest.TestCase):
    def setUp(self):
        self.svc = sdk.Service()

    def test_invoke_gives_output_exit_code_and_times(self):
        r = self.svc.commands.invoke('printf hello; printf oops >&2; exit 3')
        self.assertIsInstance(r, CommandResult)
        self.assertEqual((r.stdout, r.stderr, r.exit_code, r.is_ok), ('hello', 'oops', 3, False))
        self.assertTrue(r.cid.startswith('zcmd'))
        self.assertGreaterEqual(r.total_time_sec, 0)
        ok = self.svc.commands.invoke('cat', stdin='fed in')
        self.assertEqual((ok.stdout, ok.is_ok, ok.len_stdout_bytes), ('fed in', True, 6))

    def test_a_timeout_is_reported_not_raised(self):
        r = self.svc.commands.invoke('sleep 5', timeout=0.2)
        self.assertTrue(r.is_timeout)
        self.assertFalse(r.is_ok)
        self.assertIn('0.2 sec.', r.timeout_msg)

    def test_callbacks_get_the_result(self):
        got = []
        self.svc.commands.invoke('echo x', callback=got.append)
        self.assertEqual(got[0].stdout, 'x\n')
        done, finished = [], threading.Event()
        r = self.svc.commands.invoke_async('echo y', callback=lambda res: (done.append(res), finished.set()))
        self.assertTrue(r.is_async and r.is_ok and r.cid.startswith('zcma'))
        self.assertTrue(finished.wait(5), 'the callback did not run')
        self.assertEqual(done[0].stdout, 'y\n')

    def test_undecodable_output_gets_the_replace_char(self):
        r = self.svc.commands.invoke("printf 'a\\377b'", replace_char='?')
        self.assertEqual(r.stdout, 'a?b')


if __name__ == '__main__':
    unittest.main()
