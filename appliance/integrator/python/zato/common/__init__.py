"""``from zato.common import DATA_FORMAT`` and the other constants, as
Zato's zato.common re-exports them from zato.common.api."""

from zato.common.api import *  # noqa: F401,F403
from zato.common.api import (  # noqa: F401
    CHANNEL, CONTENT_TYPE, DATA_FORMAT, PARAMS_PRIORITY, SEC_DEF_TYPE, URL_PARAMS_PRIORITY,
    URL_TYPE, ZATO_DEFAULT, ZATO_ERROR, ZATO_NONE, ZATO_NOT_GIVEN, ZATO_OK, ZATO_WARNING,
)
from zato.common.exception import ZatoException  # noqa: F401 - Zato 2 and 3 import it from here
