"""``from zato.common.ext.bunch import Bunch, bunchify`` as in Zato."""

from bunch import Bunch, bunchify, unbunchify  # noqa: F401
