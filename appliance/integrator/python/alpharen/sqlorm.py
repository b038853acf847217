"""SQLAlchemy's ORM on outgoing SQL, used when a real SQLAlchemy (2.0) is
uploaded to the node: ``self.outgoing.sql.get(NAME).session()`` is then a
real ``sqlalchemy.orm.Session``, for declarative models and
``session.query(Model)``, ``add``, ``commit``, ``rollback``.

Its engine is SQLAlchemy's own PostgreSQL dialect on :mod:`alpharen.dbapi`
(statements go to the integrator over the worker pipe, as the SDK's
sessions do), so the worker never holds the database's address or
password. No pooling in the worker (``NullPool``): each checkout is a
fresh integrator session, whose pooled connection the integrator lends
until it is closed or the call ends.
"""

from sqlalchemy import engine as sa_engine, orm, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql import JSON, JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.sql import sqltypes
from sqlalchemy import util

from alpharen import dbapi

DRIVER = 'alpharen'


class _JSON(JSON):
    """Values of json columns arrive parsed; nothing to do."""

    def result_processor(self, dialect, coltype):
        return None


class _JSONB(JSONB):
    def result_processor(self, dialect, coltype):
        return None


class AlpharenDialect(PGDialect):
    """PostgreSQL through the integrator: ``postgresql+alpharen:///NAME``."""

    driver = DRIVER
    supports_statement_cache = True
    default_paramstyle = 'named'
    supports_native_decimal = True
    colspecs = util.update_copy(PGDialect.colspecs, {sqltypes.JSON: _JSON, JSON: _JSON, JSONB: _JSONB})

    @classmethod
    def import_dbapi(cls):
        return dbapi

    def create_connect_args(self, url):
        return [url.database], {}

    def is_disconnect(self, e, connection, cursor):
        # The integrator's pool drops broken connections itself.
        return isinstance(e, dbapi.OperationalError) and e.code in ('sql_unavailable', 'unavailable')

    def do_ping(self, dbapi_connection):
        return True


registry.register('postgresql.%s' % DRIVER, __name__, 'AlpharenDialect')

# Engines by connection name, made once per worker (their dialects ask the
# server's version at the first connection).
_engines = {}


def engine(name):
    """The engine of outgoing SQL connection ``name``."""
    eng = _engines.get(name)
    if eng is None:
        url = sa_engine.URL.create('postgresql+%s' % DRIVER, database=name)
        eng = _engines[name] = sa_engine.create_engine(url, poolclass=pool.NullPool)
    return eng


def forget():
    """Drops the engines (the connections' definitions changed)."""
    _engines.clear()


class Session(orm.Session):
    """SQLAlchemy's Session on an outgoing connection. A plain string
    given to ``execute`` runs as written (``:name``, ``%(name)s``, ``%s``
    or ``$1`` placeholders), as Zato's SQLAlchemy 1.3 sessions and the
    SDK's own sessions take it; anything else is SQLAlchemy's."""

    def execute(self, statement, params=None, *args, **kw):
        if isinstance(statement, str):
            return self.connection().exec_driver_sql(statement, _raw_params(params))
        return super().execute(statement, params, *args, **kw)


def _raw_params(params):
    if params is None:
        return None
    if isinstance(params, list) and not all(isinstance(p, dict) for p in params):
        return tuple(params)
    return params


def session(name):
    """A new ORM session on ``name`` (``self.outgoing.sql.get(name).session()``)."""
    return Session(bind=engine(name))
