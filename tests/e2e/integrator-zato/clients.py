# -*- coding: utf-8 -*-
# zato: ide-deploy=True
# Zato 3.2's shapes: dataclass Models as SimpleIO, and a shell command
# through self.commands with a callback.

# stdlib
from dataclasses import dataclass

# Zato
from zato.server.commands import CommandResult
from zato.server.service import Model, Service


@dataclass(init=False)
class GetClientRequest(Model):
    client_id: int


@dataclass(init=False)
class GetClientResponse(Model):
    name:    str
    email:   str
    segment: str


class GetClient(Service):

    class SimpleIO:
        input  = GetClientRequest
        output = GetClientResponse

    def handle(self):
        request = self.request.input  # type: GetClientRequest
        response = GetClientResponse()
        response.name = 'Jane Doe'
        response.email = 'client%d@example.com' % request.client_id
        response.segment = 'RNZ'
        self.response.payload = response


class RunCommand(Service):

    def on_completed(self, result: CommandResult) -> None:
        self.logger.info('Received result: exit code %s', result.exit_code)

    def handle(self):
        response = self.commands.invoke('printf %s "$(uname -s)"', callback=self.on_completed)
        self.response.payload = {'Response': response.stdout, 'Is OK?': response.is_ok}
