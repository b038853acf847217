# A REST resource as Zato users write one: an abstract base shared by the
# services, per-verb handlers, the WSGI environment, bunch, log_input and
# a named cache; no `name` attributes, so Zato derives the names.
from bunch import bunchify

from zato.common.api import DATA_FORMAT
from zato.server.service import Service


class BaseUserService(Service):
    """Not a service: no handle(); the others share its helpers."""

    def users(self):
        return self.cache.get_cache('builtin', 'users')

    def reply(self, data, status=200):
        self.response.status_code = status
        self.response.payload = data


class UserResource(BaseUserService):
    def handle_GET(self):
        self.log_input()
        user_id = self.request.http.GET.get('id')
        user = self.users().get(user_id)
        if user is None:
            self.reply({'error': 'no user %s' % user_id}, 404)
            return
        user = bunchify(user)
        self.reply({'id': user_id, 'name': user.name, 'method': self.wsgi_environ['REQUEST_METHOD'],
                    'path': self.wsgi_environ['PATH_INFO'], 'format': DATA_FORMAT.JSON})

    def handle_POST(self):
        req = self.request.bunchified()
        self.users().set(req.id, {'name': req.name}, 3600)
        self.reply({'created': req.id, 'agent': self.request.http.headers.get('x-client', '')}, 201)
        self.log_output()


class ConfiguringCORS(BaseUserService):
    def handle_OPTIONS(self):
        self.response.headers['Access-Control-Allow-Origin'] = self.wsgi_environ.get('HTTP_ORIGIN', '*')
        self.response.headers['Access-Control-Allow-Methods'] = 'GET, POST, OPTIONS'
        self.response.payload = ''
