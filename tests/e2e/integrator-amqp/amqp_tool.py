"""The test's own AMQP client (pika): declare queues, publish, count,
drain. Usage: amqp_tool.py PORT USER PASSWORD COMMAND ARGS..."""

import json
import sys

import pika


def main():
    port, user, password, cmd, *args = sys.argv[1:]
    params = pika.ConnectionParameters('127.0.0.1', int(port), '/', pika.PlainCredentials(user, password))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    if cmd == 'declare':  # QUEUE [DLX_ROUTING_KEY]: durable; with a DLX through the default exchange
        arguments = {'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': args[1]} if len(args) > 1 else None
        ch.queue_declare(args[0], durable=True, arguments=arguments)
    elif cmd == 'publish':  # QUEUE FIRST COUNT [SLEEP]: persistent {"id": N, "sleep": S}, confirmed
        ch.confirm_delivery()
        queue, first, count = args[0], int(args[1]), int(args[2])
        sleep = float(args[3]) if len(args) > 3 else 0
        props = pika.BasicProperties(delivery_mode=2, content_type='application/json', headers={'x-test': 'yes'})
        for i in range(first, first + count):
            ch.basic_publish('', queue, json.dumps({'id': i, 'sleep': sleep}), props, mandatory=True)
    elif cmd == 'count':  # QUEUE: "ready unacked"... ready only (passive declare)
        print(ch.queue_declare(args[0], passive=True).method.message_count)
    elif cmd == 'drain':  # QUEUE: every message as a JSON line {body, headers}, acked
        while True:
            method, props, body = ch.basic_get(args[0])
            if method is None:
                break
            print(json.dumps({'body': json.loads(body), 'headers': props.headers or {},
                              'message_id': props.message_id}, default=str))
            ch.basic_ack(method.delivery_tag)
    else:
        sys.exit('unknown command %s' % cmd)
    conn.close()


if __name__ == '__main__':
    main()
