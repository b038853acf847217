"""AMQP: ``self.outgoing.amqp.send(msg, 'name', exchange, routing_key)``
as in Zato, and ``self.request.amqp`` in a service an AMQP channel calls.

The worker holds no AMQP client: a send goes to the integrator over the
worker pipe, which publishes it on its broker connection and answers once
the broker confirmed the message. A send that could not be confirmed
within the connection's timeout raises ``AMQPError``."""

import base64
import json

from bunch import Bunch
from alpharen.zatoapi import ZatoAPI

# The connections' names, set by the worker from the sync frame.
_names = set()


def sync(connectors):
    """Takes the names of the outgoing AMQP connections (sync frame)."""
    _names.clear()
    _names.update(c['name'] for c in connectors.get('amqp') or [])


class AMQPError(Exception):
    """A send was not confirmed by the broker, or was refused."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _body(msg, properties):
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return bytes(msg)
    if isinstance(msg, str):
        return msg.encode('utf-8')
    properties.setdefault('content_type', 'application/json')
    return json.dumps(msg).encode('utf-8')


class AMQPFacade(ZatoAPI):
    """``self.outgoing.amqp`` (Zato's ``AMQPFacade``)."""

    zato_path = 'self.outgoing.amqp'
    zato_supported = 'send'

    def send(self, msg, out_name, exchange=None, routing_key=None, properties=None, headers=None,
             *args, **kwargs):
        """Publishes ``msg`` (str, bytes, or anything JSON can write) through
        the outgoing connection ``out_name``; returns once the broker
        confirmed it. ``exchange`` and ``routing_key`` default to the
        connection's."""
        import alpharen.integrator as sdk  # noqa: PLC0415 - it imports this module
        if out_name not in _names:
            raise AMQPError('no outgoing AMQP connection is named %r (configured: %s)'
                            % (out_name, ', '.join(sorted(_names)) or 'none'), 'not_found')
        props = dict(properties or {})
        body = _body(msg, props)
        if sdk._host is None:
            raise AMQPError('not connected to the integrator', 'unavailable')
        reply = sdk._host({'call': 'amqp.send', 'conn': out_name, 'exchange': exchange,
                           'routing_key': routing_key, 'properties': props, 'headers': dict(headers or {}),
                           'body': base64.b64encode(body).decode()})
        if not reply.get('ok'):
            raise AMQPError(reply.get('error') or 'AMQP send failed', reply.get('code'))

    def __contains__(self, name):
        return name in _names

    def keys(self):
        return sorted(_names)


class AMQPRequest(ZatoAPI):
    """``self.request.amqp``: the delivery an AMQP channel handed over.
    ``msg`` has the body and the delivery's details (queue, exchange,
    routing_key, redelivered, delivery_tag, headers, properties, attempt);
    the channel acknowledges after the service returns and retries or
    dead-letters after it raises, so there is no ack() or reject()."""

    zato_path = 'self.request.amqp'
    zato_supported = 'msg, headers, properties, attempt'

    def __init__(self, meta, raw):
        self.msg = Bunch(meta)
        self.msg.body = raw
        self.headers = Bunch(meta.get('headers') or {})
        self.properties = Bunch(meta.get('properties') or {})
        self.attempt = meta.get('attempt', 1)
