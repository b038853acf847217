"""A PEP 249 (DB-API 2.0) module over the outgoing SQL sessions, so that a
real SQLAlchemy uploaded to the node can run its PostgreSQL dialect (and
its ORM) on ``[[integrator.outgoing_sql]]`` connections.

The worker still holds no driver, no address and no password: a
connection here is one session of :mod:`alpharen.sql`, whose statements
the integrator runs on its pool. ``connect(NAME)`` takes the outgoing
connection's name. The first statement begins a transaction (DB-API's
implicit one), ``commit()`` and ``rollback()`` end it, ``close()`` rolls
back what was not committed.
"""

from alpharen import sql

apilevel = '2.0'
threadsafety = 1
# SQLAlchemy compiles ``:name``; the integrator also reads ``%(name)s``,
# ``%s`` and ``$1`` (statements passed through as written).
paramstyle = 'named'

# PEP 249's exception hierarchy, on the classes the sessions raise.
Error = sql.Error
DatabaseError = sql.DatabaseError
OperationalError = sql.OperationalError
IntegrityError = sql.IntegrityError
DataError = sql.DataError
ProgrammingError = sql.ProgrammingError


class Warning(Exception):  # noqa: A001 - PEP 249's name
    """PEP 249's Warning (never raised here)."""


class InterfaceError(Error):
    """The connection or cursor was used after close()."""


class InternalError(DatabaseError):
    """PEP 249's InternalError (never raised here)."""


class NotSupportedError(DatabaseError):
    """PEP 249's NotSupportedError (never raised here)."""


def connect(name, **_ignored):
    """A connection on the outgoing SQL connection ``name``."""
    if name not in sql._defs:
        raise OperationalError('no outgoing SQL connection is named %r (configured: %s)'
                               % (name, ', '.join(sorted(sql._defs)) or 'none'), 'not_found')
    return Connection(name)


class Connection:
    """A DB-API connection: one session of the integrator's pool, taken
    at the first statement."""

    def __init__(self, name):
        self.name = name
        self._session = sql.Session(name)
        self.closed = False

    def _check(self):
        if self.closed:
            raise InterfaceError('connection to outgoing SQL %r is closed' % self.name)

    def cursor(self):
        self._check()
        return Cursor(self)

    def commit(self):
        self._check()
        self._session.commit()

    def rollback(self):
        self._check()
        self._session.rollback()

    def close(self):
        if not self.closed:
            self.closed = True
            self._session.close()


class Cursor:
    """A DB-API cursor; each result is read whole (no server-side cursor)."""

    arraysize = 1

    def __init__(self, conn):
        self.connection = conn
        self._result = None
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self.closed = False

    def _run(self, operation, params):
        if self.closed:
            raise InterfaceError('cursor is closed')
        self.connection._check()
        result = self.connection._session.execute(operation, params)
        self._result = result if result.returns_rows else None
        # The type codes are not sent; SQLAlchemy's PostgreSQL dialect
        # needs only the names (values arrive already as Python types).
        self.description = ([(k, None, None, None, None, None, None) for k in result.keys()]
                            if result.returns_rows else None)
        self.rowcount = result.rowcount

    def execute(self, operation, parameters=None):
        self._run(operation, {} if parameters is None else parameters)
        return self

    def executemany(self, operation, seq_of_parameters):
        seq = list(seq_of_parameters)
        if seq and all(isinstance(p, dict) for p in seq):
            self._run(operation, seq)
        else:
            total = 0
            for p in seq:
                self._run(operation, p)
                total += max(self.rowcount, 0)
            self.rowcount = total
        return self

    def _rows(self):
        if self._result is None:
            raise ProgrammingError('the last statement returned no rows', 'invalid_result')
        return self._result

    def fetchone(self):
        return self._rows().fetchone()

    def fetchmany(self, size=None):
        return self._rows().fetchmany(self.arraysize if size is None else size)

    def fetchall(self):
        return self._rows().fetchall()

    def close(self):
        self.closed = True
        self._result = None

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def __iter__(self):
        return iter(self.fetchall())
