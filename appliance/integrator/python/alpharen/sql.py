"""Outgoing SQL: ``self.outgoing.sql.get('crm').session()`` as in Zato.

The worker holds no database driver: every statement goes to the
integrator over the worker pipe, which runs it on its pooled PostgreSQL
connection. A session behaves like the part of SQLAlchemy's Session that
services use: ``execute(sql, params)`` with ``:name``, ``%(name)s``, ``%s``
or ``$1`` placeholders (values always travel as bind parameters), and a
result with ``fetchall()``, ``fetchone()``, ``first()``, ``scalar()``,
``rowcount``; rows read by index, column name or attribute. The first
statement begins a transaction; ``commit()`` or ``rollback()`` ends it;
``close()`` (``with closing(...)``) without a commit rolls it back.
"""

import base64
import datetime
import decimal
import importlib.abc
import importlib.machinery
import math
import os
import sys
import uuid

from alpharen.zatoapi import ZatoAPI

# The connections' names, set by the worker from the sync frame.
_defs = {}
# Which service call is running: the integrator closes a call's sessions
# when it ends and numbers the next call's afresh, so a session kept past
# its call must not reach them with its old id.
_call = 0


def next_call():
    """Called by the worker as each service call begins."""
    global _call
    _call += 1


class Error(Exception):
    """Base of the errors of outgoing SQL (DB-API's and SQLAlchemy's names)."""

    def __init__(self, message, code=None, sqlstate=None):
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
        self.pgcode = sqlstate  # psycopg's name


class DatabaseError(Error):
    """The database refused the statement."""


class OperationalError(DatabaseError):
    """The database could not be reached or did not answer in time."""


class IntegrityError(DatabaseError):
    """A constraint refused the change (SQLSTATE class 23)."""


class DataError(DatabaseError):
    """A value did not fit (SQLSTATE class 22)."""


class ProgrammingError(DatabaseError):
    """The statement or its parameters are wrong (SQLSTATE class 42)."""


def _error(reply):
    code, state = reply.get('code'), reply.get('sqlstate') or ''
    if code in ('sql_unavailable', 'sql_timeout', 'unavailable'):
        cls = OperationalError
    elif state.startswith('23'):
        cls = IntegrityError
    elif state.startswith('22'):
        cls = DataError
    elif state.startswith('42') or code in ('invalid_params', 'not_found'):
        cls = ProgrammingError
    else:
        cls = DatabaseError
    err = cls(reply.get('error') or 'SQL error', code, state or None)
    err.session = reply.get('session')  # the session the statement ran in, if any
    return err


def _request(**req):
    import alpharen.integrator as sdk  # noqa: PLC0415 - it imports this module
    if sdk._host is None:
        raise OperationalError('not connected to the integrator', 'unavailable')
    reply = sdk._host(req)
    if not reply.get('ok'):
        raise _error(reply)
    return reply.get('value')


# ---- values on the wire (see the integrator's sqlvalue.rs) -------------------

def _tag(t, v):
    return {'$': t, 'v': v}


def encode(v):
    """A Python parameter as it travels to the integrator."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else _tag('float', repr(v))
    if isinstance(v, decimal.Decimal):
        return _tag('dec', str(v))
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _tag('bytes', base64.b64encode(bytes(v)).decode())
    if isinstance(v, datetime.datetime):
        return _tag('ts', v.isoformat())
    if isinstance(v, datetime.date):
        return _tag('date', v.isoformat())
    if isinstance(v, datetime.time):
        return _tag('time', v.isoformat())
    if isinstance(v, uuid.UUID):
        return _tag('uuid', str(v))
    if isinstance(v, dict):
        return _tag('json', v)
    if isinstance(v, (list, tuple)):
        return [encode(x) for x in v]
    raise TypeError('a parameter of type %s cannot be sent to the database' % type(v).__name__)


def _params(params):
    """A dict of named values, a list of positional ones or a list of
    dicts (one run each), every value encoded."""
    if isinstance(params, dict):
        return {str(k): encode(v) for k, v in params.items()}
    return [_params(p) if isinstance(p, dict) else encode(p) for p in params]


_DECODE = {
    'dec': decimal.Decimal, 'bytes': base64.b64decode, 'ts': datetime.datetime.fromisoformat,
    'tstz': datetime.datetime.fromisoformat, 'date': datetime.date.fromisoformat,
    'time': datetime.time.fromisoformat, 'uuid': uuid.UUID, 'float': float,
    'json': lambda v: v,
}


def decode(v):
    """A value of a result row as Python's type."""
    if isinstance(v, dict):
        return _DECODE[v['$']](v.get('v'))
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


# ---- results -----------------------------------------------------------------

class Row(tuple):
    """A result row: a tuple that is also read by column name, as
    ``row['name']``, ``row.name``, ``row._mapping``, ``dict(row)``."""

    def __new__(cls, values, keys):
        row = super().__new__(cls, values)
        row._fields = tuple(keys)
        return row

    def __getitem__(self, key):
        if isinstance(key, str):
            try:
                key = self._fields.index(key)
            except ValueError:
                raise KeyError('no column is named %r (columns: %s)'
                               % (key, ', '.join(self._fields))) from None
        return tuple.__getitem__(self, key)

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as e:
            raise AttributeError(str(e)) from None

    def keys(self):
        return list(self._fields)

    def values(self):
        return list(self)

    def items(self):
        return list(zip(self._fields, self))

    @property
    def _mapping(self):
        return dict(self.items())

    def _asdict(self):
        return dict(self.items())


class _List(list):
    """``result.scalars()`` / ``result.mappings()``: a list with
    SQLAlchemy's ``all()`` and ``first()``."""

    def all(self):
        return list(self)

    def first(self):
        return self[0] if self else None


class Result:
    """What ``session.execute()`` returns (SQLAlchemy's result API)."""

    def __init__(self, value):
        self._keys = value['columns']
        self._rows = [Row([decode(c) for c in r], self._keys) for r in value['rows']]
        self._pos = 0
        self.rowcount = value['rowcount']
        self.returns_rows = value['returns_rows']

    def keys(self):
        return list(self._keys)

    def _rest(self):
        rows, self._pos = self._rows[self._pos:], len(self._rows)
        return rows

    def fetchone(self):
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchmany(self, size=1):
        rows = self._rows[self._pos:self._pos + size]
        self._pos += len(rows)
        return rows

    def fetchall(self):
        return self._rest()

    all = fetchall

    def first(self):
        rows = self._rest()
        return rows[0] if rows else None

    def scalar(self):
        row = self.first()
        return row[0] if row is not None else None

    def one(self):
        rows = self._rest()
        if len(rows) != 1:
            raise ProgrammingError('expected one row, got %d' % len(rows), 'invalid_result')
        return rows[0]

    def one_or_none(self):
        rows = self._rest()
        if len(rows) > 1:
            raise ProgrammingError('expected at most one row, got %d' % len(rows), 'invalid_result')
        return rows[0] if rows else None

    def scalar_one(self):
        return self.one()[0]

    def scalars(self):
        return _List(r[0] for r in self._rest())

    def mappings(self):
        return _List(r._mapping for r in self._rest())

    def close(self):
        self._pos = len(self._rows)

    def __iter__(self):
        return iter(self._rest())


# ---- sessions ----------------------------------------------------------------

def _statement(statement):
    """The SQL text and the parameters bound into it, of a plain string,
    our ``text()`` or a real SQLAlchemy ``TextClause``."""
    bound = {}
    for key, bp in (getattr(statement, '_bindparams', None) or {}).items():
        if getattr(bp, 'value', None) is not None:
            bound[key] = bp.value
    bound.update(getattr(statement, '_alpharen_bound', None) or {})
    text = getattr(statement, 'text', statement)
    if not isinstance(text, str):
        text = str(statement)
    return text, bound


class Session(ZatoAPI):
    """A session on one outgoing SQL connection."""

    zato_path = 'session'
    zato_supported = 'execute, commit, rollback, close, begin'

    def __init__(self, conn):
        self.conn = conn
        self._sid = None
        self._call = _call
        self._tx = False

    @property
    def _id(self):
        """The integrator's id of this session, None before its first
        statement and once the call that opened it has ended."""
        return self._sid if self._call == _call else None

    @_id.setter
    def _id(self, value):
        self._sid, self._call = value, _call

    def execute(self, statement, params=None, **kw):
        text, bound = _statement(statement)
        if params is None:
            params = kw
        if isinstance(params, dict):
            params = dict(bound, **params)
        elif isinstance(params, (list, tuple)) and params and all(isinstance(p, dict) for p in params):
            params = [dict(bound, **p) for p in params]
        elif isinstance(params, (list, tuple)):
            params = list(params)
        else:
            params = [params]
        self._tx = True  # the integrator begins one even if the statement fails
        try:
            value = _request(call='sql.execute', conn=self.conn, session=self._id, sql=text,
                             params=_params(params))
        except Error as e:
            # A failed first statement still opened a session (and holds a
            # pooled connection in its transaction): keep it, so that
            # rollback() and close() reach it.
            if getattr(e, 'session', None) is not None:
                self._id = e.session
            raise
        self._id = value['session']
        return Result(value)

    def commit(self):
        if self._id is not None and self._tx:
            self._tx = False
            _request(call='sql.commit', session=self._id)

    def rollback(self):
        # Nothing to end since the last commit or rollback: no round trip
        # (SQLAlchemy's pool rolls back every connection it gets back).
        if self._id is not None and self._tx:
            self._tx = False
            _request(call='sql.rollback', session=self._id)

    def close(self):
        """Ends the session; an open transaction is rolled back. The
        session may execute again (a new one begins)."""
        if self._id is not None:
            sid, self._id = self._id, None
            _request(call='sql.close', session=sid)

    def begin(self):
        """``with session.begin():`` commits at the end, or rolls back on an error."""
        return _Transaction(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _Transaction:
    def __init__(self, session):
        self.session = session

    def __enter__(self):
        return self.session

    def __exit__(self, kind, value, tb):
        if kind is None:
            self.session.commit()
        else:
            self.session.rollback()
        return False


class SQLConnection:
    """What ``self.outgoing.sql.get(name)`` returns (Zato's SessionWrapper)."""

    def __init__(self, name):
        self.name = name
        self.config = {'name': name}

    def session(self):
        """SQLAlchemy's ORM Session when a real SQLAlchemy is installed
        (an uploaded wheel), otherwise the SDK's text-SQL session."""
        orm = _orm()
        return orm.session(self.name) if orm else Session(self.name)


def _orm():
    """alpharen.sqlorm when a real SQLAlchemy (2.0 or later) can be
    imported, else None."""
    try:
        import sqlalchemy  # noqa: PLC0415 - optional, an uploaded package
    except ImportError:
        return None
    major = str(getattr(sqlalchemy, '__version__', '')).split('.')[0]
    if not major.isdigit() or int(major) < 2:
        return None  # the SDK's stand-in ('0+alpharen'), or a 1.x
    from alpharen import sqlorm  # noqa: PLC0415
    return sqlorm


class SQLConnStore(ZatoAPI):
    """``self.outgoing.sql``: name → connection."""

    zato_path = 'self.outgoing.sql'
    zato_supported = 'get, [name]'

    def __getitem__(self, name):
        if name not in _defs:
            raise KeyError('no outgoing SQL connection is named %r (configured: %s)'
                           % (name, ', '.join(sorted(_defs)) or 'none'))
        return SQLConnection(name)

    def get(self, name, *args, **kwargs):
        return self[name]

    def __contains__(self, name):
        return name in _defs

    def keys(self):
        return _defs.keys()


def sync(connectors):
    """The connection names of a sync frame."""
    _defs.clear()
    _defs.update({c['name']: c for c in connectors.get('sql', [])})
    orm = sys.modules.get('alpharen.sqlorm')
    if orm is not None:
        orm.forget()


# ---- `from sqlalchemy import text` without SQLAlchemy ------------------------

_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'shim')


class _SQLAlchemyFallback(importlib.abc.MetaPathFinder):
    """Finds the SDK's small ``sqlalchemy`` (``text()`` and ``exc``) only
    when no real SQLAlchemy is importable: it is the last finder, after
    the one that searches ``sys.path``, so an installed package wins."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == 'sqlalchemy':
            return importlib.machinery.PathFinder.find_spec(fullname, [_SHIM])
        return None


if not any(isinstance(f, _SQLAlchemyFallback) for f in sys.meta_path):
    sys.meta_path.append(_SQLAlchemyFallback())
