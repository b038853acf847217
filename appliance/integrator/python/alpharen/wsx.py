"""``self.wsx``: pushing messages to the clients of WebSocket channels.

Zato 3.1's shape, ``self.wsx.channel[NAME].broadcast(data)``, plus a push
to one client by its id and ``self.wsx.client`` (the client whose message
the service is handling). The integrator holds the connections; each push
is one request to it. Data that is bytes goes as a binary message, a str
as text, anything else as its JSON text.
"""

import base64

from alpharen.zatoapi import ZatoAPI

# Set by the worker at each sync: names of the WebSocket channels.
_channels = set()


def sync(connectors):
    _channels.clear()
    _channels.update(connectors.get('wsx', []))


def _data(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {'b64': base64.b64encode(bytes(value)).decode()}
    return {'json': value}


class WSXChannel:
    """One WebSocket channel: ``broadcast(data)`` to all its clients
    (answers how many it reached), ``send(data, client_id)`` to one
    (answers whether that client is connected)."""

    def __init__(self, call, name):
        self._call = call
        self.name = name

    def broadcast(self, data):
        return self._call('wsx.send', channel=self.name, data=_data(data))

    def send(self, data, client_id):
        return self._call('wsx.send', channel=self.name, client_id=client_id, data=_data(data)) > 0

    def __repr__(self):
        return '<WSXChannel %s>' % self.name


class WSXChannels:
    """``self.wsx.channel``: ``[NAME]`` (KeyError for no such WebSocket
    channel, as in Zato) and ``get(NAME)`` (None)."""

    def __init__(self, call):
        self._call = call

    def __getitem__(self, name):
        if name not in _channels:
            raise KeyError('No such WebSocket channel `%s`' % name)
        return WSXChannel(self._call, name)

    def get(self, name):
        try:
            return self[name]
        except KeyError:
            return None

    def __contains__(self, name):
        return name in _channels


class WSXClient:
    """The client whose message the service is handling: ``id``,
    ``channel`` (its channel's name) and ``send(data)``, a push before the
    service's own answer."""

    def __init__(self, call, client_id, channel):
        self._call = call
        self.id = client_id
        self.channel = channel

    def send(self, data):
        return WSXChannel(self._call, self.channel).send(data, self.id)

    def __repr__(self):
        return '<WSXClient %s on %s>' % (self.id, self.channel)


class WSX(ZatoAPI):
    """``self.wsx``: ``channel[NAME]``, ``send(data, channel, client_id=None)``
    (all clients of the channel, or the one), ``client`` and ``client_id``
    (None unless the call came from a WebSocket channel)."""

    zato_path = 'self.wsx'
    zato_supported = 'channel, send, client, client_id'

    def __init__(self, call, client=None):
        self.channel = WSXChannels(call)
        self.client = WSXClient(call, client['client_id'], client['channel']) if client else None
        self.client_id = self.client.id if self.client else None

    def send(self, data, channel, client_id=None):
        target = self.channel[channel]
        return target.broadcast(data) if client_id is None else target.send(data, client_id)
