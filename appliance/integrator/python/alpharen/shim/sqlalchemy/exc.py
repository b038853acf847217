"""``sqlalchemy.exc``'s names for the errors of outgoing SQL sessions."""

from alpharen.sql import (  # noqa: F401
    DatabaseError, DataError, IntegrityError, OperationalError, ProgrammingError,
)
from alpharen.sql import Error as SQLAlchemyError

DBAPIError = DatabaseError
StatementError = DatabaseError
