"""The service API: what a user's service sees as ``self``.

Mirrors the parts of Zato's ``Service`` that services in the wild use, so
code written for Zato runs unchanged. Only the standard library is used:
workers run the firmware's bare python3.
"""

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import os as _os
import time as _time
import uuid
import xml.etree.ElementTree as ET

__all__ = [
    'Service', 'Request', 'Response', 'ServiceError', 'Reportable', 'BadRequest',
    'Unauthorized', 'Forbidden', 'NotFound', 'Int', 'Integer', 'Float', 'Bool',
    'Boolean', 'AsIs', 'Unicode', 'Text', 'List', 'Dict', 'Opaque',
    'HostError', 'QueueFull', 'LockTimeout',
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


# ---- SimpleIO element types -------------------------------------------------

class AsIs:
    """A SimpleIO element kept as it arrived."""

    def __init__(self, name, default=None):
        self.name = name
        self.default = default

    def convert(self, value):
        return value

    def __str__(self):
        return self.name


Opaque = AsIs
Unicode = Text = AsIs


class Int(AsIs):
    def convert(self, value):
        return int(value)


Integer = Int


class Float(AsIs):
    def convert(self, value):
        return float(value)


class Bool(AsIs):
    def convert(self, value):
        if isinstance(value, str):
            return value.strip().lower() in ('1', 'true', 'yes', 'on', 'y', 't')
        return bool(value)


Boolean = Bool


class List(AsIs):
    def convert(self, value):
        return value if isinstance(value, list) else [value]


class Dict(AsIs):
    pass


def _element(item):
    if isinstance(item, AsIs):
        return item
    name = str(item)
    # Zato's naming convention: a leading '-' marks an optional element in
    # the newer single-tuple style; handled by the caller.
    return AsIs(name)


class Bunch(dict):
    """A dict whose keys are also attributes (``self.request.input.id``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None


class Payload(Bunch):
    """The default response payload: set it whole or field by field."""


# ---- Request and response ---------------------------------------------------

class HTTPInfo:
    """What the channel received over HTTP."""

    def __init__(self, method='GET', path='/', query='', headers=None, path_params=None):
        self.method = method
        self.path = path
        self.query_string = query
        self.headers = Bunch(headers or {})
        # A templated channel's {parameters}; they win over the query's.
        self.path_params = Bunch(path_params or {})
        self.GET = Bunch(_flat(urllib.parse.parse_qs(query, keep_blank_values=True)))
        self.params = Bunch(self.GET, **self.path_params)
        self.POST = Bunch()

    @property
    def query(self):
        return self.GET

    def __repr__(self):
        return '<HTTPInfo %s %s>' % (self.method, self.path)


def _flat(multi):
    return {k: (v[0] if len(v) == 1 else v) for k, v in multi.items()}


class Request:
    def __init__(self, payload=None, raw=b'', http=None, data_format='json'):
        self.payload = payload
        self.raw_request = raw
        self.http = http or HTTPInfo()
        self.data_format = data_format
        self.input = Bunch()
        # Pub/sub, invoke_async and scheduler calls: msg_id, topic, attempt, job.
        self.meta = Bunch()
        self.msg_id = None


class Response:
    def __init__(self):
        self.payload = Payload()
        self.status_code = 200
        self.headers = {}
        self.content_type = None
        self.content_encoding = None

    def __setattr__(self, key, value):
        # Zato code sets `self.response.payload = None` to mean empty.
        object.__setattr__(self, key, value)


# ---- Outgoing REST connections ----------------------------------------------

class OutgoingResponse:
    """What an outgoing call returns (requests-like)."""

    def __init__(self, status_code, body, headers, data_format):
        self.status_code = status_code
        self.content = body
        self.headers = Bunch({k.lower(): v for k, v in headers.items()})
        self.data_format = data_format
        self.text = body.decode('utf-8', 'replace')
        self._data = None
        self._parsed = False

    @property
    def ok(self):
        return 200 <= self.status_code < 400

    def json(self):
        return json.loads(self.text) if self.text else None

    @property
    def data(self):
        if not self._parsed:
            self._parsed = True
            try:
                if self.data_format == 'json':
                    self._data = self.json()
                elif self.data_format == 'form':
                    self._data = Bunch(_flat(urllib.parse.parse_qs(self.text)))
                elif self.data_format == 'xml':
                    self._data = ET.fromstring(self.content) if self.content else None
                else:
                    self._data = self.text
            except ValueError:
                self._data = None
            except ET.ParseError:
                self._data = None
        return self._data

    def __repr__(self):
        return '<OutgoingResponse %s>' % self.status_code


class RESTConnection:
    """One outgoing REST connection definition, callable with Zato's
    ``conn.get(cid, params)`` / ``conn.post(cid, data, params)``."""

    def __init__(self, config):
        self.name = config['name']
        self.host = config['host'].rstrip('/')
        self.url_path = config.get('url_path') or '/'
        self.data_format = config.get('data_format') or 'json'
        self.timeout = float(config.get('timeout') or 30)
        self.username = config.get('username')
        self.password = config.get('password')

    def _url(self, params):
        params = dict(params or {})
        path = self.url_path
        # Zato fills {placeholders} of the path from params; the rest go to the query.
        for key in list(params):
            token = '{%s}' % key
            if token in path:
                path = path.replace(token, urllib.parse.quote(str(params.pop(key)), safe=''))
        url = self.host + path
        if params:
            url += ('&' if '?' in url else '?') + urllib.parse.urlencode(params, doseq=True)
        return url

    def _encode(self, data):
        if data is None:
            return None, None
        if isinstance(data, bytes):
            return data, None
        if isinstance(data, str):
            return data.encode('utf-8'), None
        if self.data_format == 'form' and isinstance(data, dict):
            return urllib.parse.urlencode(data, doseq=True).encode(), 'application/x-www-form-urlencoded'
        if self.data_format == 'xml' and isinstance(data, ET.Element):
            return ET.tostring(data), 'application/xml'
        return json.dumps(data).encode('utf-8'), 'application/json'

    def http_request(self, method, cid=None, data=None, params=None, headers=None):
        body, ctype = self._encode(data)
        req = urllib.request.Request(self._url(params), data=body, method=method)
        if ctype:
            req.add_header('Content-Type', ctype)
        if self.username is not None:
            token = base64.b64encode(('%s:%s' % (self.username, self.password or '')).encode()).decode()
            req.add_header('Authorization', 'Basic ' + token)
        if cid:
            req.add_header('X-Zato-CID', str(cid))
        for k, v in (headers or {}).items():
            req.add_header(k, str(v))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return OutgoingResponse(resp.status, resp.read(), dict(resp.headers), self.data_format)
        except urllib.error.HTTPError as e:
            return OutgoingResponse(e.code, e.read() or b'', dict(e.headers or {}), self.data_format)

    def get(self, cid=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('GET', cid, None, params, headers)

    def delete(self, cid=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('DELETE', cid, None, params, headers)

    def options(self, cid=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('OPTIONS', cid, None, params, headers)

    def post(self, cid=None, data=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('POST', cid, data, params, headers)

    def put(self, cid=None, data=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('PUT', cid, data, params, headers)

    def patch(self, cid=None, data=None, params=None, headers=None, *args, **kwargs):
        return self.http_request('PATCH', cid, data, params, headers)

    def ping(self, cid=None):
        """HEAD on the connection's address, as the seed asks for checks."""
        return self.http_request('HEAD', cid).status_code


class OutgoingWrapper:
    def __init__(self, conn):
        self.conn = conn
        self.config = {'name': conn.name, 'address_host': conn.host, 'address_url_path': conn.url_path}

    def ping(self, cid=None):
        return self.conn.ping(cid)


class OutgoingMap:
    """``self.out.rest`` / ``self.outgoing.plain_http``: name → wrapper."""

    def __init__(self, defs):
        self._defs = defs

    def __getitem__(self, name):
        try:
            return OutgoingWrapper(RESTConnection(self._defs[name]))
        except KeyError:
            raise KeyError('no outgoing REST connection is named %r (configured: %s)'
                           % (name, ', '.join(sorted(self._defs)) or 'none')) from None

    def get(self, name, default=None):
        if name in self._defs:
            return self[name]
        return default

    def __contains__(self, name):
        return name in self._defs

    def keys(self):
        return self._defs.keys()


class Outgoing:
    def __init__(self, defs):
        self.rest = OutgoingMap(defs)
        self.plain_http = self.rest


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


class RedisLikeConn(KV):
    """``self.kvdb.conn``: the Redis calls Zato services use."""

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


class KVDB:
    def __init__(self):
        self.conn = RedisLikeConn('kvdb')


class Cache(KV):
    """``self.cache``: Zato's ``self.cache.default.get/set(key, value, expiry)``."""

    def __init__(self, ns='cache'):
        super().__init__(ns)

    @property
    def default(self):
        return self

    def set(self, key, value, expiry=None, ttl=None, **kwargs):
        return super().set(key, value, ttl=ttl if ttl is not None else expiry)

    def __getitem__(self, name):
        return Cache('cache.' + name) if name != 'default' else self


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


class Service:
    """Base class of user services. Subclasses set ``name`` and define
    ``handle(self)``."""

    name = None

    def __init__(self):
        self.cid = uuid.uuid4().hex
        self.request = Request()
        self.response = Response()
        self.logger = logging.getLogger(self.get_name())
        self.out = Outgoing(_outgoing_defs)
        self.outgoing = self.out
        self.environ = {}
        self.channel = None
        self.kv = KV()
        self.kvdb = KVDB()
        self.cache = Cache()
        self.pubsub = PubSub()

    @classmethod
    def get_name(cls):
        return cls.__dict__.get('name') or cls._default_name()

    @classmethod
    def _default_name(cls):
        base = cls.__module__.rsplit('.', 1)[-1]
        out = []
        for i, ch in enumerate(cls.__name__):
            if ch.isupper() and i:
                out.append('-')
            out.append(ch.lower())
        return '%s.%s' % (base, ''.join(out))

    # Hooks Zato services may override.
    def before_handle(self):
        pass

    def after_handle(self):
        pass

    def handle(self):
        raise NotImplementedError('%s does not define handle()' % type(self).__name__)

    def invoke(self, name, payload=None, *args, **kwargs):
        """Runs another deployed service in this worker and returns its
        response payload."""
        cls = _registry.get(name)
        if cls is None:
            raise NotFound(self.cid, 'no service is named %r' % name)
        other = cls()
        other.cid = self.cid
        other.request.payload = payload
        other.request.http = self.request.http
        other.request.data_format = 'json'
        run_service(other)
        return other.response.payload

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


def sio_elements(sio, kind):
    """A SimpleIO's `KIND_required` and `KIND_optional` elements (KIND is
    'input' or 'output'), with newer Zato's `KIND = 'a', '-b'` (a dash
    marks optional) added: (required, optional)."""
    required = list(getattr(sio, kind + '_required', ()) or ())
    optional = list(getattr(sio, kind + '_optional', ()) or ())
    single = getattr(sio, kind, None)
    if single is not None:
        for item in (single if isinstance(single, (list, tuple)) else (single,)):
            name = str(item)
            if name.startswith('-'):
                optional.append(name[1:] if not isinstance(item, AsIs) else item)
            else:
                required.append(item)
    return required, optional


def _read_input(service):
    """SimpleIO: fills request.input from the path parameters, the
    payload, then the query; a missing required element is a 400 naming
    it. Without SimpleIO, input holds the query and path parameters."""
    sio = getattr(type(service), 'SimpleIO', None)
    if sio is None:
        service.request.input = Bunch(service.request.http.params)
        return
    source = {}
    payload = service.request.payload
    if isinstance(payload, dict):
        source.update(payload)
    required, optional = sio_elements(sio, 'input')
    params = service.request.http.params
    missing = []
    values = Bunch()
    for item, needed in [(i, True) for i in required] + [(i, False) for i in optional]:
        el = _element(item)
        name = el.name
        if name in service.request.http.path_params:
            raw = service.request.http.path_params[name]
        elif name in source:
            raw = source[name]
        elif name in params:
            raw = params[name]
        else:
            if needed:
                missing.append(name)
            else:
                values[name] = el.default
            continue
        try:
            values[name] = el.convert(raw) if raw is not None else None
        except (TypeError, ValueError):
            raise BadRequest(service.cid, 'Invalid input: %s' % name) from None
    if missing:
        raise BadRequest(service.cid, 'Missing input: %s' % ', '.join(missing))
    service.request.input = values


def run_service(service):
    _read_input(service)
    service.before_handle()
    service.handle()
    service.after_handle()
