"""Zato's exceptions that answer with an HTTP status."""

from alpharen.integrator import (  # noqa: F401
    BadRequest, Forbidden, NotFound, Reportable, ServiceError as ZatoException, Unauthorized,
)
