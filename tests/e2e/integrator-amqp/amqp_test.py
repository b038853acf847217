"""Services of tests/e2e/integrator-amqp.sh: a channel's service that
records each message's id in the KV, one that always fails, and one that
publishes through the outgoing connection "mq"."""

import time

from zato.server.service import Service


class Record(Service):
    """Called by the channel work-in: one KV key per distinct id."""
    name = 'amqp-test.record'

    def handle(self):
        msg = self.request.payload
        assert self.channel.type == 'amqp', self.channel.type
        assert self.request.amqp.msg.queue == 'work', self.request.amqp.msg
        assert self.request.amqp.headers['x-test'] == 'yes', self.request.amqp.headers
        time.sleep(msg.get('sleep', 0))
        self.kv.ns('seen').set(str(msg['id']), 1)
        self.kv.ns('calls').incr('record')


class Fail(Service):
    """Called by the poison channels: counts its calls, then fails."""
    name = 'amqp-test.fail'

    def handle(self):
        self.kv.ns('calls').incr('fail-%s' % self.request.amqp.msg.queue)
        raise ValueError('poisoned message %s' % self.request.payload)


class Seen(Service):
    """GET /seen: distinct ids recorded and the calls of each service."""
    name = 'amqp-test.seen'

    def handle(self):
        calls = self.kv.ns('calls')
        self.response.payload = {
            'distinct': len(self.kv.ns('seen').keys()),
            'record': calls.get('record') or 0,
            'fail_poison': calls.get('fail-poison') or 0,
            'fail_poison_dlx': calls.get('fail-poison.dlx') or 0,
        }


class Send(Service):
    """POST /send {"id": N}: publishes it to the queue "sent", confirmed."""
    name = 'amqp-test.send'

    def handle(self):
        msg = self.request.payload
        self.outgoing.amqp.send(msg, 'mq', '', 'sent', properties={'message_id': str(msg['id'])},
                                headers={'x-test': 'yes'})
        self.response.payload = {'sent': msg['id']}
