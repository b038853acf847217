"""``from zato.server.service import Service`` — the ALPHA-REN service API."""

from bunch import Bunch  # noqa: F401 - Zato's module has it too
from alpharen.integrator import (  # noqa: F401
    AsIs, Bool, Boolean, CSV, Date, DateTime, Decimal, Dict, DictList, Float, Int, Integer, List,
    Opaque, Service, Text, Unicode, UUID,
)
from alpharen.sio import DictList as ListOfDicts, Elem as ForceType  # noqa: F401 - Zato 3's names
from alpharen.model import Model  # noqa: F401 - Zato 3.2's dataclass SimpleIO

