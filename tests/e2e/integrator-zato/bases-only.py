# Only base classes, as genesisng's scheduler/sherlock.py: deployed as in Zato;
# a call answers that it defines no handle method.
from zato.server.service import Service


class BaseAPI(Service):
    def auth(self):
        return self.request.http.headers.get('x-token')
