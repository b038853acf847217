from zato.server.service import Bool, Int, Service


class UserGet(Service):
    """Returns a user by id; path parameter typed by SimpleIO."""
    name = 'chan.user.get'

    class SimpleIO:
        input_required = (Int('user_id'),)
        input_optional = (Bool('verbose'), 'lang')
        output_required = ('user_id', 'channel')
        output_optional = ('verbose', 'lang')

    def handle(self):
        self.response.payload = {
            'user_id': self.request.input.user_id, 'verbose': self.request.input.verbose,
            'lang': self.request.input.lang, 'channel': self.channel.name}


class UserMe(Service):
    """The caller's own user: a literal path beside the templated one."""
    name = 'chan.user.me'

    def handle(self):
        self.response.payload = {'me': True, 'channel': self.channel.name}


class Orders(Service):
    """No SimpleIO: input holds the path and query parameters as text."""
    name = 'chan.orders'

    def handle(self):
        self.response.payload = {'input': dict(self.request.input),
                                 'path_params': dict(self.request.http.path_params)}
