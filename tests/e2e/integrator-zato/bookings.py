# Shaped as genesisng's services (written for Zato 3.1): a booking holding
# dates and a price kept in a named cache and read back with details=True,
# an optional List the request leaves out, and an object (as an SQLAlchemy
# row would be) set as the payload, answered through the SimpleIO output.
import datetime
from decimal import Decimal

from zato.server.service import Date, DateTime, Int, List, Service


class Booking:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)

    def __repr__(self):
        return '<Booking %s>' % self.id


class GetBooking(Service):
    class SimpleIO:
        input_required = (Int('id'),)
        input_optional = (List('page'),)
        output_required = ('id', Date('check_in'), DateTime('created'), 'hits', 'expiry', 'types',
                           'page_is_none')
        output_optional = ('price',)

    def handle(self):
        inp = self.request.input
        cache = self.cache.get_cache('builtin', 'bookings')
        key = 'booking.%d' % inp.id
        entry = cache.get(key, details=True)
        if entry is None:
            cache.set(key, {'id': inp.id, 'check_in': datetime.date(2019, 5, 1),
                            'created': datetime.datetime(2019, 4, 2, 10, 20, 30),
                            'price': Decimal('120.50')}, expiry=3600)
            entry = cache.get(key, details=True)
        b = entry.value
        self.response.payload = Booking(
            id=b['id'], check_in=b['check_in'], created=b['created'], price=b['price'],
            hits=entry.hits, expiry=entry.expiry, page_is_none=inp.page is None,
            types=[type(b['check_in']).__name__, type(b['created']).__name__, type(b['price']).__name__],
            secret='not an output element')


class StoreObject(Service):
    def handle(self):
        self.cache.default.set('an-object', {'conn': object()})
