"""Services of tests/e2e/integrator-websocket.sh: one behind the WebSocket
channel, one behind a REST channel that pushes to its clients."""

from zato.server.service import Service


class Echo(Service):
    """Answers each message with what came and who sent it; {"op":
    "push-me"} first pushes a message to the sending client, {"op":
    "boom"} fails."""

    name = 'wsx.echo'

    def handle(self):
        payload = self.request.payload
        if payload == {'op': 'boom'}:
            raise ValueError('boom as asked')
        if isinstance(payload, dict) and payload.get('op') == 'push-me':
            self.wsx.client.send({'pushed_to': self.wsx.client_id})
        self.response.payload = {'echo': payload, 'client_id': self.wsx.client_id,
                                 'channel': self.channel.name, 'type': self.channel.type}


class Push(Service):
    """POST {"msg": ..., "client_id": optional}: to all clients of the
    channel chat, or to one."""

    name = 'wsx.push'

    def handle(self):
        req = self.request.payload
        chat = self.wsx.channel['chat']
        if req.get('client_id'):
            self.response.payload = {'sent': chat.send(req['msg'], req['client_id'])}
        else:
            self.response.payload = {'sent': chat.broadcast(req['msg'])}
