"""What a deploy finds in a module without running it: every use of a part
of Zato the integrator lacks, every import that cannot be satisfied, and
Python 2 syntax, each with its line and what to do, all at once."""

import ast
import importlib
import importlib.util
import os
import re
import sys

import zato

# Service attributes of Zato that this integrator does not provide.
UNSUPPORTED_ATTRS = {
    'patterns': 'integration patterns', 'sso': 'single sign-on',
    'search': 'search connections',
    'odb': 'the operational database', 'cloud': 'cloud connections', 'im': 'instant messaging',
    'amqp': 'AMQP this way; publish with self.outgoing.amqp.send', 'zmq': 'ZeroMQ', 'scheduler': 'the scheduler API',
    'vault': 'Vault',
}
SUPPORTED_OUT = {'rest', 'plain_http', 'sql', 'amqp'}
PY2_HINT = 'this module is Python 2; the node runs Python 3.11: port it to Python 3 (print(), "except E as e", ...)'
# Lines that only Python 2 accepts.
_PY2_LINES = [
    re.compile(r'^\s*print\s+[^\s(=]'),
    re.compile(r'^\s*except\s+[\w.]+\s*,\s*\w+\s*:'),
    re.compile(r'^\s*raise\s+[\w.]+\s*,'),
    re.compile(r'^\s*exec\s+["\']'),
]
_PY2_ERRORS = ('Missing parentheses in call to', 'leading zeros in decimal integer literals')


def python2_line(source, error):
    """The line of Python 2 syntax behind a SyntaxError, or None."""
    if any(hint in str(error.msg) for hint in _PY2_ERRORS):
        return error.lineno
    for no, line in enumerate(source.splitlines(), 1):
        if any(p.match(line) for p in _PY2_LINES):
            return no
    return None


def _guarded(node, parents):
    """True when an import sits in a try whose handler catches ImportError
    (an optional dependency)."""
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.Try) and node in parent.body:
            for h in parent.handlers:
                names = []
                if h.type is None:
                    return True
                for t in (h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]):
                    names.append(getattr(t, 'id', getattr(t, 'attr', '')))
                if set(names) & {'ImportError', 'ModuleNotFoundError', 'Exception', 'BaseException'}:
                    return True
        node = parent
    return False


# Python 2's standard modules and their Python 3 names.
PY2_MODULES = {
    'httplib': 'http.client', 'urllib2': 'urllib.request', 'urlparse': 'urllib.parse',
    'cStringIO': 'io', 'StringIO': 'io', 'ConfigParser': 'configparser', 'Queue': 'queue',
    'cPickle': 'pickle', 'HTMLParser': 'html.parser', 'Cookie': 'http.cookies',
    'cookielib': 'http.cookiejar', '__builtin__': 'builtins', 'thread': '_thread',
    'commands': 'subprocess', 'SocketServer': 'socketserver', 'xmlrpclib': 'xmlrpc.client',
}


def _statement(module, names):
    return 'from %s import %s' % (module, ', '.join(names)) if names else 'import %s' % module


# What the SDK's sqlalchemy stand-in (alpharen/shim) provides.
_STANDIN = {'sqlalchemy': {'text', 'exc', 'sql', '__version__'}, 'sqlalchemy.sql': {'text', 'TextClause'},
            'sqlalchemy.exc': None}


def _standin_lacks(module, names):
    """True when `sqlalchemy` is only the SDK's stand-in and the import
    needs more of it (the ORM, column types, ...)."""
    spec = importlib.util.find_spec('sqlalchemy')
    if spec is None or os.sep + 'shim' + os.sep not in (spec.origin or ''):
        return False
    if module not in _STANDIN:
        return True
    allowed = _STANDIN[module]
    return allowed is not None and any(n != '*' and n not in allowed for n in names)


def _check_import(module, names, line, own_path, local=()):
    """Problems of one import statement: (line, message). A module that
    changes sys.path itself (own_path) is trusted with its other imports;
    `local` are the top-level modules of the module's own project."""
    top = module.split('.')[0]
    if top == 'zato':
        if module not in zato.SUPPORTED:
            return [(line, '`%s`: %s is not supported yet by the ALPHA-REN integrator; '
                           'supported Zato modules: %s' % (_statement(module, names), module,
                                                           ', '.join(zato.SUPPORTED[1:])))]
        mod = importlib.import_module(module)
        return [(line, '`from %s import %s`: %s is not provided by the ALPHA-REN integrator yet'
                 % (module, n, n)) for n in names if n != '*' and not hasattr(mod, n)
                and '%s.%s' % (module, n) not in zato.SUPPORTED]
    if top in PY2_MODULES:
        return [(line, '`%s`: %s is a Python 2 module; this module is Python 2 and the node runs '
                       'Python 3.11: port it (Python 3 has %s)' % (_statement(module, names), top,
                                                                  PY2_MODULES[top]))]
    if own_path or top in local or top in sys.stdlib_module_names or top in ('alpharen', 'bunch'):
        return []
    if top == 'sqlalchemy' and _standin_lacks(module, names):
        return [(line, '`%s`: only the SDK\'s small sqlalchemy stand-in (text() and exc) is on this '
                       'node; upload SQLAlchemy\'s wheel (with greenlet and typing_extensions) with '
                       '`ctl integrator packages add`' % _statement(module, names))]
    if importlib.util.find_spec(top) is None:
        return [(line, '`%s`: %s is not installed on this node; upload its wheel with '
                       '`ctl integrator packages add` (services have the Python standard library, '
                       'what Zato gives every service (bunch, zato.common) and the uploaded packages)'
                 % (_statement(module, names), top))]
    return []


def scan(source, filename, local=()):
    """[(line, message)] for the module, in line order; raises SyntaxError
    (with msg replaced by PY2_HINT when it is Python 2). `local`: the
    top-level modules of its project, importable by it."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        line = python2_line(source, e)
        if line is not None:
            e.msg, e.lineno = PY2_HINT, line
        raise
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    own_path = any(isinstance(n, ast.Attribute) and n.attr == 'path' and isinstance(n.value, ast.Name)
                   and n.value.id == 'sys' for n in ast.walk(tree))
    problems = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and not _guarded(node, parents):
            for a in node.names:
                problems.update(_check_import(a.name, (), node.lineno, own_path, local))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and not _guarded(node, parents):
            problems.update(_check_import(node.module, [a.name for a in node.names], node.lineno,
                                          own_path, local))
        elif isinstance(node, ast.Attribute):
            base = node.value
            if isinstance(base, ast.Name) and base.id == 'self' and node.attr in UNSUPPORTED_ATTRS:
                problems.add((node.lineno, '`self.%s` (%s) is not supported by the ALPHA-REN integrator'
                              % (node.attr, UNSUPPORTED_ATTRS[node.attr])))
            if (isinstance(base, ast.Attribute) and base.attr in ('out', 'outgoing')
                    and isinstance(base.value, ast.Name) and base.value.id == 'self'
                    and node.attr not in SUPPORTED_OUT):
                problems.add((node.lineno, '`self.%s.%s` is not supported by the ALPHA-REN integrator '
                              '(only self.out.rest, self.outgoing.plain_http, self.outgoing.sql and self.outgoing.amqp)' % (base.attr, node.attr)))
    return sorted(problems)
