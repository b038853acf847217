"""Outgoing REST connections: ``self.out.rest['NAME'].conn.get(...)``."""

import base64
import json
import urllib.parse
import xml.etree.ElementTree as ET

from bunch import Bunch
from alpharen.amqp import AMQPFacade
from alpharen.sql import SQLConnStore
from alpharen.zatoapi import ZatoAPI


def _flat(multi):
    return {k: (v[0] if len(v) == 1 else v) for k, v in multi.items()}


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
        # Here, not at the top: urllib.request brings http.client, ssl and
        # email, which a worker whose services make no call never needs.
        import urllib.error
        import urllib.request
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


class Outgoing(ZatoAPI):
    zato_path = 'self.out'
    zato_supported = 'rest, plain_http, sql, amqp'

    def __init__(self, defs):
        self.rest = OutgoingMap(defs)
        self.plain_http = self.rest
        self.sql = SQLConnStore()
        self.amqp = AMQPFacade()
