"""Zato compatibility of the SDK: names, verb dispatch, SimpleIO, bunch,
deploy checks and the request a worker builds. Cases marked "Zato" are
taken from Zato's own source (docstrings and tests)."""

import base64
import datetime
import json
import unittest

import alpharen.integrator as sdk
from alpharen import deploycheck, dispatch, sio, worker
from bunch import Bunch, bunchify, unbunchify


class Names(unittest.TestCase):
    def test_uncamelify_cases_from_zato(self):
        # Zato: zato-common/test/zato/common/test_util.py and uncamelify's docstring.
        self.assertEqual(dispatch.uncamelify('HelloHowAreYouGOOD'), 'hello-how-are-you-good')
        self.assertEqual(dispatch.uncamelify('ILikeToReadWSDLDocsNotReallyNOPENotMeQ'),
                         'i-like-to-read-wsdl-docs-not-really-nope-not-me-q')

    def test_service_names(self):
        cases = [
            ('cors-options', 'ConfiguringCORS', 'cors-options.configuring-cors'),
            ('api', 'GetUserDetails', 'api.get-user-details'),
            ('my_services', 'GetUser', 'my-services.get-user'),
            ('my_services', 'My_Class', 'my-services.my_class'),
            ('hello', 'HTTPClient', 'hello.http-client'),
            ('Billing', 'Create', 'billing.create'),
            ('mod', 'getUser', 'mod.get-user'),
        ]
        for module, cls, want in cases:
            self.assertEqual(dispatch.service_name(module, cls), want, (module, cls))

    def test_get_name_prefers_name_attribute_inherited_too(self):
        class Base(sdk.Service):
            name = 'x.base'

        class Child(Base):
            pass

        class Plain(sdk.Service):
            pass

        Plain._zato_module = 'cors-options'
        self.assertEqual(Child.get_name(), 'x.base')
        self.assertEqual(Plain.get_name(), 'cors-options.plain')
        self.assertEqual((Plain().name, Plain().impl_name), ('cors-options.plain', 'cors-options.Plain'))


def run(cls, method=None, channel='http-soap', payload=None, query=''):
    svc = cls()
    svc.channel = sdk.ChannelInfo('c', channel)
    if method:
        svc.wsgi_environ = worker.wsgi_environ(
            {'method': method, 'path': '/p', 'query': query, 'headers': {'User-Agent': 'ua'}},
            b'', payload, {'data_format': 'json'})
    svc.request.http = sdk.HTTPInfo(svc.wsgi_environ)
    svc.request.payload = payload
    sdk.run_service(svc)
    return svc.response


class Verbs(sdk.Service):
    def handle(self):
        self.response.payload = 'handle'

    def handle_GET(self):
        self.response.payload = 'get'

    def handle_POST(self):
        self.response.payload = 'post'


class HandleOnly(sdk.Service):
    def handle(self):
        self.response.payload = 'handle'


class Dispatch(unittest.TestCase):
    # Zato's _invoke: with any handle_VERB on an HTTP channel, only the
    # verb's handler runs (405 without one); handle() otherwise.
    def test_verb_handler_wins_over_handle(self):
        self.assertEqual(run(Verbs, 'GET').payload, 'get')
        self.assertEqual(run(Verbs, 'POST').payload, 'post')

    def test_verb_without_handler_is_405_even_with_handle(self):
        r = run(Verbs, 'DELETE')
        self.assertEqual(r.status_code, 405)
        self.assertFalse(r.payload)

    def test_handle_only_answers_every_verb(self):
        self.assertEqual(run(HandleOnly, 'DELETE').payload, 'handle')

    def test_non_http_channels_call_handle(self):
        self.assertEqual(run(Verbs, None, channel='scheduler').payload, 'handle')

    def test_invoke_without_a_verb_is_405_with_a_verb_runs_it(self):
        sdk._registry.clear()
        sdk._registry['t.verbs'] = Verbs

        class Caller(sdk.Service):
            def handle(self):
                self.response.payload = {
                    'none': self.invoke('t.verbs'),
                    'get': self.invoke('t.verbs', wsgi_environ={'REQUEST_METHOD': 'GET'})}

        out = run(Caller, 'GET').payload
        self.assertFalse(out['none'])
        self.assertEqual(out['get'], 'get')

    def test_invoke_passes_environ_on(self):
        # Zato's invoke: environ=... becomes the other service's self.environ.
        class Inner(sdk.Service):
            def handle(self):
                self.environ.status_code = 201
                self.response.payload = self.environ.session

        sdk._registry['t.inner'] = Inner

        class Outer(sdk.Service):
            def handle(self):
                env = bunchify({'session': 'shared', 'status_code': 100})
                self.response.payload = {'got': self.invoke('t.inner', {}, environ=env), 'status': env.status_code}

        self.assertEqual(run(Outer).payload, {'got': 'shared', 'status': 201})

    def test_accept_false_is_400_without_handle(self):
        class No(HandleOnly):
            def accept(self):
                return False
        r = run(No, 'GET')
        self.assertEqual((r.status_code, r.payload), (400, ''))

    def test_inherited_verb_handlers_count(self):
        class Child(Verbs):
            pass
        self.assertEqual(run(Child, 'POST').payload, 'post')

    def test_abstract_base_deploys_and_fails_when_called(self):
        # Zato's service store deploys every Service subclass of a module
        # (store.py, _should_deploy); Service.handle raises when called.
        class Base(sdk.Service):
            def helper(self):
                return 1

        class Marked(HandleOnly):
            zato_dont_import = True

        self.assertTrue(worker.is_service(Base))
        self.assertFalse(worker.is_callable(Base))
        self.assertFalse(worker.is_service(Marked))
        self.assertTrue(worker.is_callable(Verbs))
        Base._zato_module = 'sherlock'
        with self.assertRaises(sdk.NoHandler) as e:
            run(Base)
        self.assertEqual(e.exception.status, 500)
        self.assertEqual(e.exception.msg, 'service sherlock.base (class Base) defines no handle '
                         'method: it is a base class for other services and cannot be called')
        class VerbsOnly(sdk.Service):
            def handle_GET(self):
                pass

            def handle_POST(self):
                pass

        with self.assertRaises(sdk.NoHandler) as e:
            run(VerbsOnly, channel='scheduler')
        self.assertIn('defines no handle method: its handle_GET, handle_POST answer only HTTP',
                      e.exception.msg)

    def test_module_of_bases_only_deploys(self):
        source = ('from zato.server.service import Service\n\n'
                  'class Sherlock(Service):\n    """Finds errors."""\n')
        reply = worker.validate({'module': 'sherlock', 'source': source, 'file': 'sherlock.py'})
        self.assertTrue(reply['ok'], reply)
        self.assertEqual([s['name'] for s in reply['services']], ['sherlock.sherlock'])

    def test_base_leaves_a_shared_name_to_the_service(self):
        source = ('from zato.server.service import Service\n\n'
                  'class Base(Service):\n    name = "api.thing"\n\n'
                  'class Thing(Base):\n    def handle(self):\n        pass\n\n'
                  'class Helper(Service):\n    pass\n')
        reply = worker.validate({'module': 'things', 'source': source, 'file': 'things.py'})
        self.assertTrue(reply['ok'], reply)
        self.assertEqual(sorted((s['name'], s['class']) for s in reply['services']),
                         [('api.thing', 'Thing'), ('things.helper', 'Helper')])


class Request(unittest.TestCase):
    def test_wsgi_environ_and_http(self):
        env = worker.wsgi_environ(
            {'method': 'PUT', 'path': '/a/b', 'query': 'x=1&y=2&y=3',
             'headers': {'X-Api-Key': 'k', 'content-type': 'application/json'},
             'remote_addr': '127.0.0.1'},
            b'{"a": 1}', {'a': 1}, {'data_format': 'json', 'channel': 'ch', 'service': 's'})
        self.assertEqual(env['REQUEST_METHOD'], 'PUT')
        self.assertEqual(env['PATH_INFO'], '/a/b')
        self.assertEqual(env['QUERY_STRING'], 'x=1&y=2&y=3')
        self.assertEqual(env['HTTP_X_API_KEY'], 'k')
        self.assertEqual(env['CONTENT_TYPE'], 'application/json')
        self.assertEqual(env['REMOTE_ADDR'], '127.0.0.1')
        http = sdk.HTTPInfo(env)
        self.assertEqual(http.method, 'PUT')
        self.assertEqual(http.GET, {'x': '1', 'y': ['2', '3']})
        self.assertEqual(http.headers['x-api-key'], 'k')
        self.assertEqual(http.POST, {})
        self.assertIsNone(http.client_cert)
        self.assertNotIn('SSL_CLIENT_S_DN', env)

    def test_client_certificate_reaches_http_and_the_environ(self):
        cert = {'subject': 'CN=orders,O=Acme', 'common_name': 'orders', 'dns_names': ['a.example'],
                'issuer': 'CN=Test CA', 'serial': '0A'}
        env = worker.wsgi_environ({'method': 'GET', 'path': '/x', 'client_cert': cert},
                                  b'', {}, {'data_format': 'json'})
        self.assertEqual(env['SSL_CLIENT_S_DN'], 'CN=orders,O=Acme')
        self.assertEqual(env['SSL_CLIENT_S_DN_CN'], 'orders')
        self.assertEqual(env['SSL_CLIENT_VERIFY'], 'SUCCESS')
        http = sdk.HTTPInfo(env)
        self.assertEqual(http.client_cert.common_name, 'orders')
        self.assertEqual(http.client_cert.dns_names, ['a.example'])
        self.assertEqual(http.to_dict()['client_cert']['issuer'], 'CN=Test CA')

    def test_input_without_simpleio_merges_the_query(self):
        class Echo(sdk.Service):
            def handle(self):
                self.response.payload = dict(self.request.input)
        self.assertEqual(run(Echo, 'POST', payload={'a': 1, 'b': 2}, query='b=9&c=3').payload,
                         {'a': 1, 'b': 2, 'c': '3'})

    def test_raw_request_and_bunchified(self):
        r = sdk.Request(raw=b'{"a": {"b": [{"c": 1}]}}')
        self.assertEqual(r.raw_request, r.raw)
        self.assertEqual(r.bunchified().a.b[0].c, 1)


class SimpleIO(unittest.TestCase):
    class SIO:
        input_required = ('name', sio.Int('age'), sio.Date('born'))
        input_optional = ('is_admin', 'retry_count', sio.DateTime('seen'), sio.List('tags'),
                          sio.Bool('-active'), sio.Opaque('blob'))

    def test_types(self):
        got = sio.parse_input(self.SIO, {
            'name': 'a', 'age': '7', 'born': '2001-02-03', 'is_admin': 'true', 'retry_count': '3',
            'seen': '2024-05-01T10:20:30+00:00', 'blob': {'x': 1}}, {'tags': 'a,b'})
        self.assertEqual(got.age, 7)
        self.assertEqual(got.born, datetime.date(2001, 2, 3))
        self.assertIs(got.is_admin, True)
        self.assertEqual(got.retry_count, 3)
        self.assertEqual(got.seen.year, 2024)
        self.assertEqual(got.tags, ['a', 'b'])
        self.assertIsNone(got.active)
        self.assertEqual(got.blob, {'x': 1})

    def test_query_wins_over_payload_as_in_zato(self):
        self.assertEqual(sio.parse_input(self.SIO, {'name': 'a', 'age': 1, 'born': '2001-01-01'},
                                         {'name': 'q'}).name, 'q')

    def test_every_problem_named(self):
        with self.assertRaises(sio.InputError) as e:
            sio.parse_input(self.SIO, {'age': 'x'}, {})
        self.assertIn('Missing required input element: name, born', str(e.exception))
        self.assertIn('age (Int expected)', str(e.exception))

    def test_single_tuple_style_with_dash(self):
        class S:
            input = 'a', '-b', sio.Int('-c')
        for _ in range(2):  # the declaration is reused by every request
            got = sio.parse_input(S, {'a': 1}, {})
            self.assertEqual(got, {'a': 1, 'b': None, 'c': None})


class BunchTests(unittest.TestCase):
    def test_bunch(self):
        b = bunchify({'a': {'b': [{'c': 1}]}})
        self.assertEqual(b.a.b[0].c, 1)
        b.d = 2
        self.assertEqual(b['d'], 2)
        self.assertIs(type(unbunchify(b)['a']), dict)
        self.assertEqual(repr(Bunch(x=1)), 'Bunch(x=1)')
        with self.assertRaises(AttributeError):
            b.missing

    def test_zato_imports(self):
        from zato.common import CHANNEL, DATA_FORMAT
        from zato.common.ext.bunch import Bunch as B2
        self.assertIs(B2, Bunch)
        self.assertEqual(DATA_FORMAT.JSON, 'json')
        self.assertEqual(CHANNEL.HTTP_SOAP, 'http-soap')


class DeployCheck(unittest.TestCase):
    def test_every_problem_at_once(self):
        src = ('import redis\nfrom zato.server.service import Service\nfrom zato.common.odb import x\n'
               'try:\n    import yaml\nexcept ImportError:\n    yaml = None\n'
               'class A(Service):\n    def handle(self):\n        self.sso.x()\n'
               '        self.out.zmq.send()\n')
        got = deploycheck.scan(src, 'a.py')
        self.assertEqual([line for line, _ in got], [1, 3, 10, 11])
        self.assertIn('`import redis`', got[0][1])
        self.assertIn('zato.common.odb', got[1][1])

    def test_a_module_that_sets_sys_path_is_trusted_with_its_imports(self):
        src = 'import sys\nsys.path.append("/x")\nimport redis\n'
        self.assertEqual(deploycheck.scan(src, 'a.py'), [])

    def test_python2_modules_and_statements_as_written(self):
        got = deploycheck.scan('import httplib\nfrom genesisng.schema import Room, Rate\n', 'a.py')
        self.assertIn('httplib is a Python 2 module', got[0][1])
        self.assertIn('http.client', got[0][1])
        self.assertIn('`from genesisng.schema import Room, Rate`', got[1][1])

    def test_zato_names_of_older_versions(self):
        src = ('from zato.common import ZatoException\n'
               'from zato.server.service import ListOfDicts, ForceType, Integer\n'
               'from zato.server.connection.http_soap import BadRequest\n')
        self.assertEqual(deploycheck.scan(src, 'a.py'), [])

    def test_python2(self):
        for src in ('print "hi"\n', 'try:\n    pass\nexcept Exception, e:\n    pass\n'):
            with self.assertRaises(SyntaxError) as e:
                deploycheck.scan(src, 'a.py')
            self.assertEqual(e.exception.msg, deploycheck.PY2_HINT)

    def test_validate_reports_all(self):
        reply = worker.validate({'module': 'm', 'file': 'm.py',
                                 'source': 'import redis\nimport six\n'})
        self.assertFalse(reply['ok'])
        self.assertEqual(len(reply['problems']), 2)

    def test_validate_base_class_and_verbs(self):
        src = ('from zato.server.service import Service\n'
               'class Base(Service):\n    def common(self):\n        return 1\n'
               'class GetUser(Base):\n    def handle_GET(self):\n        pass\n')
        reply = worker.validate({'module': 'cors_options', 'file': 'cors-options.py', 'source': src})
        # Both, as Zato's store deploys them (the base fails when called).
        self.assertEqual([s['name'] for s in reply['services']], ['cors-options.base', 'cors-options.get-user'])


class Runtime(unittest.TestCase):
    def test_unsupported_redis_call_names_zato_api(self):
        with self.assertRaises(NotImplementedError) as e:
            sdk.KVDB().conn.zadd('k', {'a': 1})
        self.assertIn('`self.kvdb.conn.zadd` is not supported yet', str(e.exception))

    def test_unknown_zato_api_is_named_as_written(self):
        for obj, path in ((sdk.CacheAPI(), 'self.cache.foo'), (sdk.Request(), 'self.request.foo'),
                          (sdk.HTTPInfo(), 'self.request.http.foo'), (HandleOnly(), 'self.foo')):
            with self.assertRaises(AttributeError) as e:
                obj.foo
            self.assertIn('`%s` is not supported yet' % path, str(e.exception))
        self.assertIsNone(getattr(HandleOnly(), 'foo', None))

    def test_worker_call_over_http(self):
        src = ('from zato.server.service import Service\n'
               'class Who(Service):\n    def handle_POST(self):\n'
               '        self.response.payload = {"m": self.wsgi_environ["REQUEST_METHOD"],'
               ' "a": self.request.http.headers["x-a"], "raw": self.request.raw_request.decode(),'
               ' "in": self.request.bunchified().v}\n')
        state = worker.State()
        state.sync({'modules': [{'module': 'who', 'file': 'who.py', 'version': 1, 'source': src}]})
        reply = worker.call({'service': 'who.who', 'channel': 'c', 'data_format': 'json',
                             'body': base64.b64encode(b'{"v": 5}').decode(),
                             'http': {'method': 'POST', 'path': '/w', 'query': '',
                                      'headers': {'x-a': 'b'}}})
        self.assertEqual(reply['status'], 200)
        self.assertEqual(json.loads(base64.b64decode(reply['body'])),
                         {'m': 'POST', 'a': 'b', 'raw': '{"v": 5}', 'in': 5})


if __name__ == '__main__':
    unittest.main()
