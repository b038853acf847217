"""A worker process: runs user services for the integrator, one request at
a time. Frames on stdin/stdout are a 4-byte big-endian length followed by
a JSON object; user output (print) goes to stderr so it can never corrupt
them. The integrator kills and replaces a worker that hangs, crashes or
outgrows its memory limit, so this loop does not defend against that.
"""

import base64
import json
import logging
import os
import struct
import sys
import traceback
import types
import urllib.parse
import xml.etree.ElementTree as ET

import alpharen.integrator as sdk
from alpharen import deploycheck, dispatch, project, sio
from alpharen.outgoing import _flat
from alpharen import amqp, mail, sql, wsx

MODULE_PREFIX = 'alpharen_services.'


def read_exact(f, n):
    buf = b''
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(f):
    head = read_exact(f, 4)
    if head is None:
        return None
    (n,) = struct.unpack('>I', head)
    body = read_exact(f, n)
    if body is None:
        return None
    return json.loads(body)


def write_frame(f, obj):
    data = json.dumps(obj, separators=(',', ':')).encode('utf-8')
    f.write(struct.pack('>I', len(data)) + data)
    f.flush()


def is_service(cls):
    """A class Zato deploys: every Service subclass the module defines
    itself, unless marked zato_dont_import. One without handle() or a
    handle_VERB() (a base class for others) is deployed too, as Zato
    does; calling it answers an error saying it defines no handle method."""
    return dispatch.DONT_DEPLOY_ATTR not in cls.__dict__


def is_callable(cls):
    """A service that can answer: it has handle() or a handle_VERB()."""
    return cls.handle is not sdk.Service.handle or bool(dispatch.verb_handlers(cls))


def load_module(module, source, filename):
    """Executes a service file as its own module; returns (module,
    service classes). Names derive from the file name, as in Zato."""
    mod = types.ModuleType(MODULE_PREFIX + module)
    mod.__file__ = filename
    code = compile(source, filename, 'exec')
    exec(code, mod.__dict__)
    stem = os.path.basename(filename)
    return mod, classes_of(mod, stem[:-3] if stem.endswith('.py') else stem)


def classes_of(mod, stem):
    """The services a module defines itself; names derive from `stem`.
    A base class (no handle method) that shares its name with a service
    of the module (a `name` attribute it passes on) leaves the name to it."""
    classes = []
    for obj in list(mod.__dict__.values()):
        if (isinstance(obj, type) and issubclass(obj, sdk.Service) and obj is not sdk.Service
                and obj.__module__ == mod.__name__):
            obj._zato_module = stem
            if is_service(obj):
                classes.append(obj)
    taken = {c.get_name() for c in classes if is_callable(c)}
    return [c for c in classes if is_callable(c) or c.get_name() not in taken]


def error_location(exc, filename):
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


def user_traceback(exc, filename):
    """The traceback limited to the user's own file (the worker's frames
    would only confuse)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    head = 'Traceback (most recent call last):\n' + ''.join(traceback.format_list(frames)) if frames else ''
    return head + ''.join(traceback.format_exception_only(type(exc), exc))


def refusal(filename, problems, traceback_text=''):
    """A refused deploy: every problem (line, message), the first's line."""
    return {'ok': False, 'file': filename, 'line': problems[0][0] if problems else None,
            'error': problems[0][1] if len(problems) == 1 else '%d problems' % len(problems),
            'problems': [{'line': line, 'message': message} for line, message in problems],
            'traceback': traceback_text}


# JSON Schema types of the SimpleIO element classes (others: any value).
SIO_TYPES = ((sio.Bool, 'boolean'), (sio.Int, 'integer'), (sio.Float, 'number'),
             (sio.List, 'array'), (sio.Dict, 'object'))


def sio_info(cls):
    """A service's SimpleIO for the channels' OpenAPI document: per
    input/output, required and optional elements with their types."""
    decl = getattr(cls, 'SimpleIO', None)
    if decl is None:
        return None
    out = {}
    for kind in ('input', 'output'):
        elements = sio.declared(decl, kind)
        for needed, label in ((True, 'required'), (False, 'optional')):
            out['%s_%s' % (kind, label)] = [
                {'name': el.name, 'type': next((t for c, t in SIO_TYPES if isinstance(el, c)), None)}
                for el, required in elements if required == needed]
    return out


def describe(classes):
    """(services as the registry stores them, [(line, problem)])."""
    services, problems = [], []
    for cls in classes:
        name = cls.get_name()
        if not isinstance(name, str) or not name:
            problems.append((None, 'class %s: name must be a non-empty string' % cls.__name__))
            continue
        services.append({'name': name, 'class': cls.__name__,
                         'doc': (cls.__doc__ or '').strip(), 'sio': sio_info(cls)})
    return services, problems


def validate(msg):
    if 'zip' in msg or 'files' in msg:
        return project.validate(msg, classes_of, describe)
    module, source, filename = msg['module'], msg['source'], msg['file']
    try:
        problems = deploycheck.scan(source, filename)
    except SyntaxError as e:
        return refusal(filename, [(e.lineno, 'SyntaxError: %s' % e.msg)], user_traceback(e, filename))
    if problems:
        return refusal(filename, problems)
    try:
        mod, classes = load_module(module, source, filename)
    except BaseException as e:  # noqa: B902 - user code may raise anything, SystemExit too
        return refusal(filename, [(error_location(e, filename), '%s: %s' % (type(e).__name__, e))],
                       user_traceback(e, filename))
    if not classes:
        return refusal(filename, [(None, 'no service is defined in %s: a service is a class deriving '
                                         'from Service' % filename)])
    services, problems = describe(classes)
    if problems:
        return refusal(filename, problems)
    return {'ok': True, 'services': services}


class State:
    def __init__(self):
        self.modules = {}  # module -> (version, [classes])

    def sync(self, msg):
        wanted = {m['module']: m for m in msg.get('modules', [])}
        for module in list(self.modules):
            if module not in wanted:
                del self.modules[module]
                project.remove(module)
        errors = []
        for module, m in wanted.items():
            have = self.modules.get(module)
            if have and have[0] == m['version']:
                continue
            try:
                if 'files' in m:
                    classes, problems = project.load(module, m['files'], classes_of)
                    if problems:
                        raise ImportError('; '.join('%s, line %s: %s' % p for p in problems))
                else:
                    project.remove(module)
                    _, classes = load_module(module, m['source'], m['file'])
                self.modules[module] = (m['version'], classes)
            except BaseException as e:  # noqa: B902
                errors.append('%s: %s' % (m['file'], e))
        sdk._registry.clear()
        for _, classes in self.modules.values():
            for cls in classes:
                sdk._registry[cls.get_name()] = cls
        sdk._outgoing_defs.clear()
        for o in msg.get('outgoing', []):
            sdk._outgoing_defs[o['name']] = o
        sql.sync(msg.get('connectors') or {})
        mail.sync(msg.get('connectors') or {})
        amqp.sync(msg.get('connectors') or {})
        wsx.sync(msg.get('connectors') or {})
        return {'ok': not errors, 'error': '; '.join(errors)}


def parse_body(raw, data_format):
    if data_format == 'json':
        if not raw.strip():
            return None
        return json.loads(raw)
    if data_format == 'form':
        return sdk.Bunch(_flat(urllib.parse.parse_qs(raw.decode('utf-8'), keep_blank_values=True)))
    if data_format == 'xml':
        return ET.fromstring(raw) if raw.strip() else None
    try:
        return raw.decode('utf-8')
    except UnicodeDecodeError:
        return raw


def render(payload, data_format):
    """Response payload → (bytes, content type)."""
    if payload is None:
        return b'', None
    if isinstance(payload, sdk.Payload) and not payload:
        return b'', None
    if isinstance(payload, bytes):
        return payload, 'application/octet-stream'
    if isinstance(payload, str):
        kind = {'json': 'application/json', 'xml': 'application/xml'}.get(data_format, 'text/plain; charset=utf-8')
        return payload.encode('utf-8'), kind
    if isinstance(payload, ET.Element):
        return ET.tostring(payload), 'application/xml'
    return json.dumps(payload, default=sio.output_value).encode('utf-8'), 'application/json'


def error_reply(status, message, cid, fatal=False):
    body = json.dumps({'error': message, 'cid': cid}).encode()
    return {'ok': False, 'status': status, 'fatal': fatal, 'error': message,
            'headers': {'content-type': 'application/json'},
            'body': base64.b64encode(body).decode()}


# The integrator's channel names for calls that are not HTTP requests, as
# Zato's channel types.
CHANNEL_TYPES = {'invoke': 'invoke', 'invoke_async': 'invoke-async', 'pubsub': 'publish',
                 'scheduler': 'scheduler'}


def wsgi_environ(http, raw, payload, msg):
    """The WSGI environment Zato gives a service called over HTTP: the
    CGI keys, HTTP_* headers and Zato's own zato.http.* keys."""
    headers = {str(k).lower(): v for k, v in (http.get('headers') or {}).items()}
    query = http.get('query') or ''
    env = {
        'REQUEST_METHOD': http.get('method'), 'PATH_INFO': http.get('path') or '/',
        'QUERY_STRING': query, 'RAW_URI': http.get('path', '/') + ('?' + query if query else ''),
        'SERVER_PROTOCOL': 'HTTP/1.1', 'wsgi.url_scheme': 'http',
        'REMOTE_ADDR': http.get('remote_addr') or '',
        'CONTENT_TYPE': headers.get('content-type', ''), 'CONTENT_LENGTH': str(len(raw)),
    }
    for k, v in headers.items():
        if k not in ('content-type', 'content-length'):
            env['HTTP_' + k.upper().replace('-', '_')] = v
    env['zato.http.headers'] = headers
    env['zato.http.GET'] = _flat(urllib.parse.parse_qs(query, keep_blank_values=True))
    env['zato.http.path_params'] = http.get('path_params') or {}
    env['zato.http.POST'] = dict(payload) if msg.get('data_format') == 'form' else {}
    env['zato.http.raw_request'] = raw
    cert = http.get('client_cert')
    if cert:
        # A tls_client_cert channel's accepted certificate, under mod_ssl's
        # names as WSGI applications read them.
        env['zato.http.client_cert'] = cert
        env['wsgi.url_scheme'] = 'https'
        env['SSL_CLIENT_VERIFY'] = 'SUCCESS'
        env['SSL_CLIENT_S_DN'] = cert.get('subject') or ''
        env['SSL_CLIENT_S_DN_CN'] = cert.get('common_name') or ''
        env['SSL_CLIENT_I_DN'] = cert.get('issuer') or ''
        env['SSL_CLIENT_M_SERIAL'] = cert.get('serial') or ''
    env['zato.channel_item'] = {'name': msg.get('channel'), 'url_path': http.get('path'),
                                'data_format': msg.get('data_format'), 'service': msg.get('service')}
    return env


def call(msg):
    sql.next_call()
    name = msg['service']
    cls = sdk._registry.get(name)
    cid = msg.get('cid') or ''
    if cls is None:
        return error_reply(404, 'no service is named %r' % name, cid)
    http = msg.get('http') or {}
    data_format = msg.get('data_format') or 'json'
    raw = base64.b64decode(msg.get('body') or '')
    svc = cls()
    if cid:
        svc.cid = cid
    channel = msg.get('channel') or ''
    meta = msg.get('meta') or {}
    if http.get('method'):
        kind = 'http-soap'
    elif 'amqp' in meta:
        kind = 'amqp'
    else:
        kind = msg.get('channel_type') or CHANNEL_TYPES.get(channel, channel)
    svc.channel = sdk.ChannelInfo(channel, kind, data_format)
    if msg.get('wsx'):
        svc.wsx = wsx.WSX(sdk._call, msg['wsx'])
    if meta:
        svc.request.meta = sdk.Bunch(meta)
        svc.request.msg_id = meta.get('msg_id')
    if 'amqp' in meta:
        svc.request.amqp = amqp.AMQPRequest(meta['amqp'], raw)
    svc.request.raw_request = raw
    svc.request.data_format = svc.data_format = data_format
    try:
        svc.request.payload = parse_body(raw, data_format)
    except (ValueError, ET.ParseError, UnicodeDecodeError) as e:
        return error_reply(400, 'request body is not valid %s: %s' % (data_format, e), svc.cid)
    if http.get('method'):
        svc.wsgi_environ = wsgi_environ(http, raw, svc.request.payload, msg)
    svc.request.http = sdk.HTTPInfo(svc.wsgi_environ)
    try:
        sdk.run_service(svc)
    except sdk.ServiceError as e:
        return error_reply(e.status, e.msg, svc.cid)
    except MemoryError:
        return error_reply(502, 'service %s exceeded the worker memory limit' % name, svc.cid, fatal=True)
    except BaseException as e:  # noqa: B902 - a service's bug must not end the worker
        logging.getLogger(name).error('cid=%s service failed:\n%s', svc.cid, traceback.format_exc())
        if isinstance(e, (SystemExit, KeyboardInterrupt)):
            return error_reply(500, 'service %s tried to exit the worker' % name, svc.cid, fatal=True)
        return error_reply(500, 'service %s failed: %s: %s' % (name, type(e).__name__, e), svc.cid)
    resp = svc.response
    try:
        body, ctype = render(resp.payload, data_format)
    except (TypeError, ValueError) as e:
        return error_reply(500, 'response payload of %s cannot be serialised: %s' % (name, e), svc.cid)
    headers = {str(k): str(v) for k, v in (resp.headers or {}).items()}
    ctype = resp.content_type or ctype
    if ctype and not any(k.lower() == 'content-type' for k in headers):
        headers['content-type'] = ctype
    return {'ok': True, 'status': int(resp.status_code or 200), 'headers': headers,
            'body': base64.b64encode(body).decode()}


MAX_LOG_LINES = 200
MAX_LOG_BYTES = 65536


class Capture(logging.Handler):
    """The log records and print() lines of one invoked call, for the
    console's Invoke panel; they still go to stderr (the node's log)."""

    def __init__(self):
        super().__init__()
        self.lines = []
        self.size = 0
        self.partial = ''
        self.out = sys.stdout

    def keep(self, line):
        if len(self.lines) < MAX_LOG_LINES and self.size + len(line) <= MAX_LOG_BYTES:
            self.lines.append(line)
            self.size += len(line)

    def emit(self, record):
        try:
            self.keep('%s %s: %s' % (record.levelname, record.name, record.getMessage()))
        except Exception:  # noqa: B902 - a bad log call must not fail the service
            pass

    # print() writes here while the call runs.
    def write(self, text):
        self.out.write(text)
        lines = (self.partial + text).split('\n')
        self.partial = lines.pop()
        for line in lines:
            self.keep('print: ' + line)
        return len(text)

    def flush(self):
        self.out.flush()


def call_captured(msg):
    cap = Capture()
    root = logging.getLogger()
    root.addHandler(cap)
    sys.stdout = cap
    try:
        reply = call(msg)
    finally:
        sys.stdout = cap.out
        root.removeHandler(cap)
    if cap.partial:
        cap.keep('print: ' + cap.partial)
    return dict(reply, logs=cap.lines)


def main():
    # The protocol gets private copies of fds 0 and 1; user code's print()
    # and input() then see stderr and /dev/null.
    proto_in = os.fdopen(os.dup(0), 'rb', buffering=65536)
    proto_out = os.fdopen(os.dup(1), 'wb')
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format='worker=%d service=%%(name)s level=%%(levelname)s %%(message)s' % os.getpid())
    state = State()

    def host(req):
        # A request of the running service to the integrator (KV, publish,
        # locks, invoke_async); the answer is the next frame on stdin.
        req = dict(req, op='host')
        write_frame(proto_out, req)
        reply = read_frame(proto_in)
        if reply is None:
            os._exit(0)
        return reply

    sdk._host = host
    while True:
        msg = read_frame(proto_in)
        if msg is None:
            return
        op = msg.get('op')
        if op == 'call':
            reply = call_captured(msg) if msg.get('capture_logs') else call(msg)
        elif op == 'sync':
            reply = state.sync(msg)
        elif op == 'validate':
            reply = validate(msg)
        elif op == 'ping':
            reply = {'ok': True}
        else:
            reply = {'ok': False, 'error': 'unknown op %r' % op}
        try:
            write_frame(proto_out, reply)
        except MemoryError:
            os._exit(70)
        if reply.get('fatal'):
            os._exit(70)


if __name__ == '__main__':
    main()
