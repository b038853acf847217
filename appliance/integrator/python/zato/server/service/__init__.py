"""``from zato.server.service import Service`` — the ALPHA-REN service API."""

from alpharen.integrator import (  # noqa: F401
    AsIs, Bool, Boolean, Dict, Float, Int, Integer, List, Opaque, Service, Text, Unicode,
)
