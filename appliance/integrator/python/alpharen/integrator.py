"""The service API: what a user's service sees as ``self``.

Mirrors the parts of Zato's ``Service`` that services in the wild use, so
code written for Zato runs unchanged. Only the standard library is used:
workers run the firmware's bare python3.
"""

import base64
import json
import logging
import os as _os
import time as _time
import uuid

from bunch import Bunch, bunchify
from alpharen import cache, dispatch, sio
from alpharen.commands import Commands
from alpharen.crypto import Crypto
from alpharen.kvdb import DataError, RedisTypes, ResponseError
from alpharen.mail import EMailAPI
from alpharen.outgoing import Outgoing
from alpharen.wsx import WSX
from alpharen.zatoapi import NotSupported, ZatoAPI
from alpharen.cache import CacheValueError, Entry  # noqa: F401 - for services
from alpharen.sio import (  # noqa: F401 - Zato's SimpleIO types, importable from here
    AsIs, Bool, Boolean, CSV, Date, DateTime, Decimal, Dict, DictList, Float, Int, Integer, List,
    Opaque, Text, Unicode, UUID,
)

__all__ = [
    'Service', 'Request', 'Response', 'ServiceError', 'Reportable', 'BadRequest',
    'Unauthorized', 'Forbidden', 'NotFound', 'Int', 'Integer', 'Float', 'Bool',
    'Boolean', 'AsIs', 'Unicode', 'Text', 'List', 'Dict', 'Opaque', 'Date', 'DateTime',
    'Decimal', 'DictList', 'CSV', 'UUID', 'Bunch', 'bunchify',
    'HostError', 'QueueFull', 'LockTimeout', 'ResponseError', 'DataError',
]


# ---- Errors a service may raise to answer with a given HTTP status ----------

class ServiceError(Exception):
    """Base of errors that carry an HTTP status back to the caller."""
    status = 500

    def __init__(self, cid=None, msg=None, status=None):
        # Zato's signature is (cid, msg); accept a lone message too.
        if msg is None and cid is not None and not _looks_like_cid(cid):
            cid, msg = None, cid
        self.cid = cid
        self.msg = msg if msg is not None else self.__class__.__name__
        if status is not None:
            self.status = status
        super().__init__(self.msg)


def _looks_like_cid(value):
    return isinstance(value, str) and len(value) >= 20 and ' ' not in value


class Reportable(ServiceError):
    def __init__(self, cid=None, msg=None, status=400):
        super().__init__(cid, msg, status)


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class NoHandler(ServiceError):
    """The called service defines no handle method (Zato raises
    NotImplementedError there; both answer 500)."""
    status = 500


class Payload(Bunch):
    """The default response payload: set it whole or field by field."""


# ---- Request and response ---------------------------------------------------

class HTTPInfo(ZatoAPI):
    """``self.request.http``: what the channel received over HTTP, read
    from the WSGI environment as Zato does."""

    zato_path = 'self.request.http'

    def __init__(self, environ=None):
        environ = environ or {}
        self.method = environ.get('REQUEST_METHOD')
        self.path = environ.get('PATH_INFO')
        self.query_string = environ.get('QUERY_STRING', '')
        self.user_agent = environ.get('HTTP_USER_AGENT', '')
        self.headers = Bunch(environ.get('zato.http.headers') or {})
        self.GET = Bunch(environ.get('zato.http.GET') or {})
        self.POST = Bunch(environ.get('zato.http.POST') or {})
        # A templated channel's {parameters} (/user/{user_id}).
        self.path_params = Bunch(environ.get('zato.http.path_params') or {})
        # Zato's are the URL path's parameters; the query's are here too
        # (what GET holds), a path parameter winning over a query one.
        self.params = Bunch(self.GET, **self.path_params)
        # The client certificate a tls_client_cert channel accepted:
        # subject, common_name, dns_names, issuer, serial; else None.
        cert = environ.get('zato.http.client_cert')
        self.client_cert = Bunch(cert) if cert else None

    @property
    def query(self):
        return self.params

    def to_dict(self):
        return {'method': self.method, 'GET': dict(self.GET), 'POST': dict(self.POST),
                'path': self.path, 'params': dict(self.params), 'user_agent': self.user_agent,
                'headers': dict(self.headers),
                'client_cert': dict(self.client_cert) if self.client_cert else None}

    def __repr__(self):
        return '<HTTPInfo %s %s>' % (self.method, self.path)


class ChannelInfo:
    """``self.channel``: the channel's name and Zato's type of channel
    ('http-soap', 'invoke', 'scheduler', ...). Compares equal to its name."""

    def __init__(self, name='', type='', data_format=None):
        self.name = name
        self.type = type
        self.data_format = data_format

    def __eq__(self, other):
        return self.name == other if isinstance(other, str) else self is other

    __hash__ = object.__hash__

    def __str__(self):
        return self.name

    def __repr__(self):
        return '<ChannelInfo %s (%s)>' % (self.name, self.type)


class Request(ZatoAPI):
    zato_path = 'self.request'

    def __init__(self, payload=None, raw=b'', http=None, data_format='json'):
        self.payload = payload
        self.raw = raw
        self.http = http or HTTPInfo()
        self.data_format = data_format
        self.input = Bunch()
        # Pub/sub, invoke_async and scheduler calls: msg_id, topic, attempt, job.
        self.meta = Bunch()
        self.msg_id = None

    @property
    def raw_request(self):
        return self.raw

    @raw_request.setter
    def raw_request(self, value):
        self.raw = value

    text = raw_request

    def bunchified(self):
        """The raw request (JSON) as a Bunch, as Zato's to_bunch()."""
        if isinstance(self.raw, dict):
            return bunchify(json.loads(json.dumps(self.raw)))
        return bunchify(json.loads(self.raw))

    to_bunch = bunchified


class Response(ZatoAPI):
    zato_path = 'self.response'

    def __init__(self):
        self.payload = Payload()
        self.status_code = 200
        self.headers = {}
        self.content_type = None
        self.content_encoding = None

    def __setattr__(self, key, value):
        # Zato code sets `self.response.payload = None` to mean empty.
        object.__setattr__(self, key, value)


# ---- The service base class -------------------------------------------------

# Registry filled by the worker: service name -> class; used by invoke().
_registry = {}
_outgoing_defs = {}
# Set by the worker: sends one request to the integrator, returns its answer.
_host = None


# ---- KV, pub/sub, locks: requests to the integrator (which owns SQLite) ----

class HostError(Exception):
    """The integrator refused a KV / publish / lock request."""

    def __init__(self, code, message):
        self.code = code
        super().__init__(message)


class QueueFull(HostError):
    """A subscriber's queue is at its max_depth; nothing was published."""


def _call(call, **kw):
    if _host is None:
        raise HostError('unavailable', 'not connected to the integrator')
    kw['call'] = call
    reply = _host(kw)
    if not reply.get('ok'):
        cls = QueueFull if reply.get('code') == 'queue_full' else HostError
        raise cls(reply.get('code'), reply.get('error') or 'integrator error')
    return reply.get('value')


def _wire(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'b64': base64.b64encode(bytes(value)).decode()}
    return {'json': value}


def _unwire(v):
    if v is None:
        return None
    if 'b64' in v:
        return base64.b64decode(v['b64'])
    return v.get('json')


class KV:
    """``self.kv``: namespaced keys with JSON or bytes values, TTL in
    seconds, compare-and-set and prefix listing."""

    def __init__(self, ns='default'):
        self.namespace = ns

    def ns(self, name):
        return KV(name)

    def get(self, key, default=None):
        v = _call('kv.get', ns=self.namespace, key=str(key))
        return default if v is None else _unwire(v)

    def set(self, key, value, ttl=None):
        _call('kv.set', ns=self.namespace, key=str(key), value=_wire(value), ttl=ttl)
        return True

    def delete(self, key):
        return _call('kv.del', ns=self.namespace, key=str(key))

    def cas(self, key, expected, new, ttl=None):
        """Sets `new` only if the current value is `expected` (None: absent);
        `new` None deletes. True when it was swapped."""
        return _call('kv.cas', ns=self.namespace, key=str(key),
                     expected=None if expected is None else _wire(expected),
                     new=None if new is None else _wire(new), ttl=ttl)

    def keys(self, prefix=''):
        return _call('kv.keys', ns=self.namespace, prefix=prefix)

    def exists(self, key):
        return _call('kv.get', ns=self.namespace, key=str(key)) is not None

    def incr(self, key, amount=1):
        """Atomic counter built on compare-and-set."""
        for _ in range(1000):
            cur = self.get(key)
            new = (cur or 0) + amount
            if self.cas(key, cur, new):
                return new
        raise HostError('conflict', 'incr of %r kept racing' % key)


class RedisLikeConn(RedisTypes, KV, ZatoAPI):
    """``self.kvdb.conn``: the Redis calls Zato services use (the data
    types in ``alpharen.kvdb``)."""

    zato_path = 'self.kvdb.conn'
    zato_supported = 'get, set, setex, delete, keys, exists, incr, incrby, ' + RedisTypes.REDIS_COMMANDS

    def _cmd(self, cmd, name, *args):
        try:
            return _call('kv.command', ns=self.namespace, key=str(name), cmd=cmd, args=list(args))
        except HostError as e:
            if e.code in ('wrong_type', 'invalid_params'):
                raise ResponseError(str(e)) from None
            raise

    def get(self, key, default=None):
        v = self._cmd('get', key)
        return default if v is None else _unwire(v)

    def set(self, key, value, ex=None, px=None, nx=False, **kwargs):
        ttl = ex if ex is not None else (px / 1000.0 if px is not None else None)
        if nx:
            return bool(self.cas(key, None, value, ttl=ttl))
        return super().set(key, value, ttl=ttl)

    def setex(self, key, time, value):
        return super().set(key, value, ttl=time)

    def delete(self, *keys):
        return sum(1 for k in keys if super(RedisLikeConn, self).delete(k))

    def keys(self, pattern='*'):
        prefix = pattern.split('*', 1)[0]
        return super().keys(prefix)

    def incrby(self, key, amount=1):
        return self.incr(key, amount)


class KVDB(ZatoAPI):
    zato_path = 'self.kvdb'

    def __init__(self):
        self.conn = RedisLikeConn('kvdb')


class CacheAPI(cache.CacheAPI):
    """``self.cache``: Zato's builtin caches on the KV store (alpharen.cache)."""

    def __init__(self):
        super().__init__(KV)


class LockTimeout(Exception):
    """The lock was not obtained within the timeout."""


class Lock:
    """``with self.lock('name', timeout=10, expires=20):`` - held by one
    worker at a time; it lapses after `expires` seconds so a killed
    holder cannot block the others forever."""

    def __init__(self, name, timeout=10, expires=20):
        self.name = name
        self.timeout = timeout
        self.expires = expires
        self.owner = '%d:%s' % (_os.getpid(), uuid.uuid4().hex)
        self.held = False

    def acquire(self):
        deadline = _time.monotonic() + (self.timeout or 0)
        delay = 0.005
        while True:
            if _call('lock.acquire', name=self.name, owner=self.owner, ttl=self.expires):
                self.held = True
                return True
            if _time.monotonic() >= deadline:
                raise LockTimeout('lock %r not obtained within %ss' % (self.name, self.timeout))
            _time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def release(self):
        if self.held:
            self.held = False
            return _call('lock.release', name=self.name, owner=self.owner)
        return False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
        return False


class PubSub:
    """``self.pubsub.publish(topic, data=msg)`` as in Zato."""

    def publish(self, topic, data=None, **kwargs):
        return _call('publish', topic=topic, data=data)


class Service(ZatoAPI):
    """Base class of user services. Subclasses define ``handle(self)`` or
    ``handle_GET(self)``, ``handle_POST(self)``, ... and may set ``name``."""

    name = None

    def __init__(self):
        cls = type(self)
        # As Zato's instances: the service's name and "module.Class".
        self.name = self.get_name()
        self.impl_name = '%s.%s' % (cls.__dict__.get('_zato_module') or cls.__module__.rsplit('.', 1)[-1],
                                    cls.__name__)
        self.cid = uuid.uuid4().hex
        self.request = Request()
        self.response = Response()
        self.logger = logging.getLogger(self.name)
        self.out = Outgoing(_outgoing_defs)
        self.outgoing = self.out
        self.email = EMailAPI()
        self.environ = {}
        self.wsgi_environ = {}
        self._user_config = None
        self.channel = ChannelInfo()
        self.data_format = 'json'
        self.kv = KV()
        self.kvdb = KVDB()
        self.crypto = Crypto(_call)
        self.cache = CacheAPI()
        self.pubsub = PubSub()
        self.commands = Commands(self)
        self.wsx = WSX(_call)

    @property
    def user_config(self):
        """Zato's user config (``[integrator.user_config]``): asked of the
        integrator at the first use in a call, secrets resolved there."""
        if self._user_config is None:
            self._user_config = bunchify(_call('user_config') or {})
        return self._user_config

    @user_config.setter
    def user_config(self, value):
        self._user_config = value

    # Zato 3.2 gives services the same object as self.config too.
    config = user_config

    @classmethod
    def get_name(cls):
        """``name`` if the class (or a base) sets one, else the name Zato
        derives from the file and class names."""
        name = getattr(cls, 'name', None)
        if name:
            return name
        module = cls.__dict__.get('_zato_module') or cls.__module__.rsplit('.', 1)[-1]
        return dispatch.service_name(module, cls.__name__)

    # Hooks Zato services may override.
    def accept(self):
        return True

    def before_handle(self):
        pass

    def after_handle(self):
        pass

    def handle(self):
        # What a class without its own handle() runs: a base class (Zato
        # deploys it, and fails when it is called), or one whose verb
        # handlers do not apply to this call.
        cls = type(self)
        verbs = sorted(dispatch.verb_handlers(cls))
        if verbs:
            why = ('its %s answer%s only HTTP requests' % (
                ', '.join('handle_' + v for v in verbs), 's' if len(verbs) == 1 else ''))
        else:
            why = 'it is a base class for other services and cannot be called'
        raise NoHandler(self.cid, 'service %s (class %s) defines no handle method: %s'
                        % (cls.get_name(), cls.__name__, why))

    def log_input(self, user_msg=''):
        """Logs the request (as Zato's log_input) and returns what it logged."""
        msg = {'name': self.get_name(), 'cid': self.cid, 'channel': self.channel.type,
               'data_format': self.data_format, 'request.payload': self.request.payload,
               'wsgi_environ': {k: v for k, v in self.wsgi_environ.items() if not k.startswith('zato.')}}
        self.logger.info('%s%s', msg, ' ' + user_msg if user_msg else '')
        return msg

    def log_output(self, user_msg=''):
        """Logs the response (as Zato's log_output) and returns what it logged."""
        msg = {'name': self.get_name(), 'cid': self.cid, 'response.payload': self.response.payload,
               'response.status_code': self.response.status_code,
               'response.headers': self.response.headers}
        self.logger.info('%s%s', msg, ' ' + user_msg if user_msg else '')
        return msg

    def invoke(self, name, payload=None, *args, as_bunch=False, wsgi_environ=None, **kwargs):
        """Runs another deployed service in this worker and returns its
        response payload. As in Zato: the name or the class, keyword
        arguments become the payload when none is given, and the other
        service sees no HTTP request unless ``wsgi_environ`` is passed, and
        ``environ`` is its self.environ."""
        if isinstance(name, type) and issubclass(name, Service):
            name = name.get_name()
        if name == self.get_name():
            raise ServiceError(self.cid, 'A service cannot invoke itself, name:[%s]' % name)
        cls = _registry.get(name)
        if cls is None:
            raise NotFound(self.cid, 'no service is named %r' % name)
        extra = {k: v for k, v in kwargs.items() if k not in _INVOKE_KEYS}
        if not payload and extra:
            payload = extra
        other = cls()
        other.cid = kwargs.get('cid') or self.cid
        other.channel = ChannelInfo('invoke', 'invoke', 'dict')
        other._user_config = self._user_config
        other.data_format = 'dict'
        other.request.payload = payload
        other.request.raw = payload
        other.request.data_format = 'dict'
        other.wsgi_environ = wsgi_environ or {}
        other.request.http = HTTPInfo(other.wsgi_environ)
        # Zato passes `environ` on as the other service's self.environ
        # (genesisng hands a Bunch with its SQL session down this way).
        other.environ = kwargs.get('environ') or {}
        run_service(other)
        out = other.response.payload
        return bunchify(out) if as_bunch else out

    def invoke_async(self, name, payload=None, *args, **kwargs):
        """Queues a run of another service (durable: it happens after a
        restart too), retried per integrator.async_attempts; returns its id."""
        return _call('invoke_async', service=name, payload=payload)

    def publish(self, topic, msg=None, **kwargs):
        """Publishes to a topic: one durable copy per subscriber; raises
        QueueFull when a subscriber's queue is at its max_depth."""
        return _call('publish', topic=topic, data=msg if msg is not None else kwargs.get('data'))

    def lock(self, name, timeout=10, expires=20):
        return Lock(name, timeout=timeout, expires=expires)


# Keyword arguments of Zato's invoke() that are not payload fields.
_INVOKE_KEYS = frozenset((
    'channel', 'data_format', 'transport', 'serialize', 'timeout', 'raise_timeout', 'cid',
    'set_response_func', 'skip_response_elem', 'environ', 'zato_ctx', 'job_type',
))


def _read_input(service):
    """SimpleIO: fills request.input; bad or missing input is a 400."""
    decl = getattr(type(service), 'SimpleIO', None)
    if decl is None:
        # As Zato without SimpleIO: a dict payload with the query's
        # parameters it lacks and the path's over it; a list or a string
        # as it is.
        payload = service.request.payload
        if isinstance(payload, (list, str, bytes)) and payload:
            service.request.input = payload
            return
        inp = Bunch(payload) if isinstance(payload, dict) else Bunch()
        for key, value in service.request.http.GET.items():
            inp.setdefault(key, value)
        inp.update(service.request.http.path_params)
        service.request.input = inp
        return
    try:
        service.request.input = sio.parse_input(decl, service.request.payload, service.request.http.params)
    except sio.InputError as e:
        raise BadRequest(service.cid, str(e)) from None


def run_service(service):
    """One call as Zato's update_handle runs it: accept(), the input, the
    hooks, and handle() or the handler of the request's HTTP verb (none
    for the verb: 405)."""
    if not service.accept():
        service.response.payload = ''
        service.response.status_code = 400
        return
    _read_input(service)
    service.before_handle()
    fn = dispatch.handler_for(service, service.channel.type, service.request.http.method)
    if fn is None:
        service.response.status_code = 405
    else:
        fn()
    service.after_handle()
    # Zato serialises the payload through SimpleIO output after the hooks.
    service.response.payload = sio.shape_output(getattr(type(service), 'SimpleIO', None),
                                                service.response.payload)
