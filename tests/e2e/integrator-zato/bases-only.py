# Only base classes: nothing here can answer a request.
from zato.server.service import Service


class BaseAPI(Service):
    def auth(self):
        return self.request.http.headers.get('x-token')
