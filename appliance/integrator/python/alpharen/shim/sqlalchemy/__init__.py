"""The SDK's stand-in for SQLAlchemy, used only when no real SQLAlchemy is
installed: ``text()`` for the outgoing SQL sessions, and ``exc`` with the
errors they raise. Nothing else of SQLAlchemy (no ORM, no engines)."""

from sqlalchemy import exc  # noqa: F401
from sqlalchemy.sql import TextClause, text  # noqa: F401

__version__ = '0+alpharen'
