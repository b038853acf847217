"""Zato compatibility for ALPHA-REN: services written for Zato import from
here unchanged. Parts of Zato the integrator does not provide fail at
deploy time with a message saying so, instead of at the first request."""

import importlib.abc
import sys

SUPPORTED = (
    'zato', 'zato.server', 'zato.server.service', 'zato.common',
    'zato.common.exception', 'zato.common.api', 'zato.common.ext', 'zato.common.ext.bunch',
    'zato.server.connection', 'zato.server.connection.http_soap', 'zato.server.commands',
)


class _Unsupported(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith('zato.') and fullname not in SUPPORTED:
            raise ImportError(
                '%s is not supported by the ALPHA-REN integrator; supported Zato modules: %s'
                % (fullname, ', '.join(SUPPORTED[1:])), name=fullname)
        return None


if not any(isinstance(f, _Unsupported) for f in sys.meta_path):
    sys.meta_path.insert(0, _Unsupported())
