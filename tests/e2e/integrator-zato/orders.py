# SimpleIO types, invoking another service by the name Zato gives it (with
# as_bunch), zato.common re-exports and the default cache.
from zato.common import CHANNEL
from zato.server.service import Bool, Date, DateTime, Int, List, Opaque, Service


class CreateOrder(Service):
    class SimpleIO:
        input_required = ('customer', Int('quantity'), Date('deliver_on'))
        input_optional = (DateTime('placed_at'), Bool('express'), List('tags'), Opaque('extra'),
                          'is_gift')

    def handle(self):
        inp = self.request.input
        price = self.invoke('orders.get-price', {'quantity': inp.quantity}, as_bunch=True)
        self.cache.default.set('last-order', inp.customer)
        self.response.payload = {
            'customer': inp.customer, 'quantity_plus_one': inp.quantity + 1,
            'weekday': inp.deliver_on.isoweekday(), 'deliver_on': inp.deliver_on,
            'placed_hour': inp.placed_at.hour if inp.placed_at else None,
            'express': inp.express, 'is_gift': inp.is_gift, 'tags': inp.tags, 'extra': inp.extra,
            'total': price.total, 'channel_is_http': self.channel.type == CHANNEL.HTTP_SOAP,
            'last_order': self.cache.default.get('last-order'),
        }


class GetPrice(Service):
    def handle(self):
        self.response.payload = {'total': self.request.payload['quantity'] * 5}
