"""``from zato.server.connection.http_soap import BadRequest`` as in Zato:
errors that answer with their HTTP status."""

from alpharen.integrator import (  # noqa: F401
    BadRequest, Forbidden, NotFound, Unauthorized,
)
