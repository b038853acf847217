"""Zato's builtin cache (details=True entries, Python values such as
genesisng's dicts of dates) and SimpleIO's optional elements and object
output, with cases taken from Zato's source (zato-cy cache.pyx's Entry,
3.1's sio.py resolve_default_value, 3.2's default_input_value None)."""

import datetime
import decimal
import json
import unittest
import uuid

import alpharen.integrator as sdk
from alpharen import cache, sio


class MemoryKV:
    """The integrator's kv.* calls on a dict; every request and answer
    goes through JSON as on the real pipe."""

    def __init__(self):
        self.data, self.ttls = {}, {}

    def __call__(self, req):
        req = json.loads(json.dumps(req))
        key = (req['ns'], req['key']) if 'key' in req else None
        call = req['call']
        if call == 'kv.get':
            value = self.data.get(key)
        elif call == 'kv.set':
            self.data[key], self.ttls[key], value = req['value'], req.get('ttl'), True
        elif call == 'kv.cas':
            value = self.data.get(key) == req['expected']
            if value:
                self.data[key], self.ttls[key] = req['new'], req.get('ttl')
        elif call == 'kv.del':
            value = self.data.pop(key, None) is not None
        else:
            value = sorted(k for ns, k in self.data if ns == req['ns'])
        return json.loads(json.dumps({'ok': True, 'value': value}))


class Base(unittest.TestCase):
    def setUp(self):
        self.kv = MemoryKV()
        old, sdk._host = sdk._host, self.kv
        self.addCleanup(setattr, sdk, '_host', old)
        self.cache = sdk.CacheAPI()


# A genesisng-like booking: dates, a price, ids, bytes, nested.
BOOKING = {
    'id': 7, 'check_in': datetime.date(2019, 5, 1), 'check_out': datetime.date(2019, 5, 3),
    'created': datetime.datetime(2019, 4, 2, 10, 20, 30, 123456),
    'confirmed': datetime.datetime(2019, 4, 2, 10, 20, tzinfo=datetime.timezone.utc),
    'arrival': datetime.time(14, 30), 'price': decimal.Decimal('120.50'),
    'uuid': uuid.UUID('12345678-1234-5678-1234-567812345678'), 'code': b'\x00\xffAB',
    'nights': [{'night': datetime.date(2019, 5, 1), 'rate': decimal.Decimal('60.25')}],
    'pair': (1, 'a'), 'tags': {'vip'}, 'by_room': {101: 'A', 102: 'B'}, 'ratio': 0.5,
    'odd': {'$zato': 'not a tag'}, 'inf': float('inf'),
}


class CacheValues(Base):
    def test_python_values_round_trip_unchanged(self):
        self.cache.get_cache('builtin', 'bookings').set('b7', BOOKING)
        got = self.cache.get_cache('builtin', 'bookings').get('b7')
        self.assertEqual(got, BOOKING)
        self.assertIs(type(got['created']), datetime.datetime)
        self.assertIs(type(got['check_in']), datetime.date)
        self.assertEqual(got['confirmed'].tzinfo, datetime.timezone.utc)

    def test_every_scalar_alone(self):
        for value in BOOKING.values():
            self.cache.default.set('k', value)
            self.assertEqual(self.cache.default.get('k'), value)

    def test_a_value_it_cannot_store_names_its_type_and_key(self):
        class Room:
            pass
        with self.assertRaises(cache.CacheValueError) as e:
            self.cache.default.set('room-1', {'rooms': [Room()]})
        self.assertIn("cache key 'room-1': a value of type Room cannot be stored", str(e.exception))
        self.assertIsInstance(e.exception, TypeError)
        self.assertEqual(self.kv.data, {})

    def test_a_plain_value_stored_before_entries_existed_is_read(self):
        self.kv.data[('cache', 'old')] = {'json': {'a': 1}}
        self.assertEqual(self.cache.get('old'), {'a': 1})
        # The first read stored it as an entry with its hit.
        self.assertEqual(self.cache.get('old', details=True).hits, 2)


class CacheDetails(Base):
    def test_get_details_is_zatos_entry(self):
        c = self.cache.get_cache('builtin', 'users')
        c.set('u1', {'born': datetime.date(1990, 1, 2)}, expiry=60)
        e = c.get('u1', details=True)
        self.assertIsInstance(e, cache.Entry)
        self.assertEqual(e.key, 'u1')
        self.assertEqual(e.value, {'born': datetime.date(1990, 1, 2)})
        self.assertEqual((e.hits, e.expiry, e.position, e.prev_read), (1, 60.0, 0, 0.0))
        self.assertGreater(e.last_read, 0)
        self.assertGreaterEqual(e.last_read, e.last_write)
        # Zato extends the expiry on a read (extend_expiry_on_get).
        self.assertEqual(e.expires_at, e.last_read + 60)
        self.assertEqual(sorted(e.to_dict()), sorted(['key', 'value', 'last_read', 'prev_read',
                                                      'last_write', 'prev_write', 'expiry',
                                                      'expires_at', 'hits', 'position']))
        e2 = c.get('u1', details=True)
        self.assertEqual((e2.hits, e2.prev_read), (2, e.last_read))
        self.assertEqual(self.kv.ttls[('cache.users', 'u1')], 60.0)

    def test_missing_key_is_none_or_the_default(self):
        self.assertIsNone(self.cache.get('nope', details=True))
        self.assertIsNone(self.cache.default.get('nope'))
        self.assertEqual(self.cache.default.get('nope', 5), 5)

    def test_set_details_and_rewrite_keeps_hits(self):
        e = self.cache.default.set('k', 1, details=True)
        self.assertEqual((e.value, e.hits, e.expiry, e.expires_at, e.prev_write), (1, 0, 0.0, 0.0, 0.0))
        self.assertIsNone(self.kv.ttls[('cache', 'k')])
        self.cache.default.get('k')
        e2 = self.cache.default.set('k', 2, 30, details=True)
        self.assertEqual((e2.value, e2.hits, e2.expiry, e2.prev_write), (2, 1, 30.0, e.last_write))
        self.assertEqual(e2.expires_at, e2.last_write + 30)

    def test_item_access_and_delete(self):
        self.cache.default['k'] = datetime.date(2020, 1, 1)
        self.assertIn('k', self.cache.default)
        self.assertEqual(self.cache.default['k'], datetime.date(2020, 1, 1))
        del self.cache.default['k']
        self.assertNotIn('k', self.cache.default)
        with self.assertRaises(KeyError):
            self.cache.default['k']


class OptionalInput(unittest.TestCase):
    class Sio:
        input_required = ('name',)
        input_optional = (sio.List('page'), 'sort', sio.List('tags', default=[]))

    def test_missing_optional_list_is_none_as_in_zato_32(self):
        got = sio.parse_input(self.Sio, {'name': 'a'}, {})
        self.assertEqual((got.page, got.sort, got.tags), (None, None, []))

    def test_zato_31s_empty_string_with_default_value(self):
        class Sio(self.Sio):
            default_value = ''
        got = sio.parse_input(Sio, {'name': 'a'}, {})
        self.assertEqual((got.page, got.sort, got.tags), ('', '', []))

    def test_given_list_is_kept(self):
        got = sio.parse_input(self.Sio, {'name': 'a', 'page': [1, 2]}, {'sort': 'x'})
        self.assertEqual((got.page, got.sort), ([1, 2], 'x'))


class Row:
    """An SQLAlchemy-like row: attributes, a repr that is not data."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
        self._sa_instance_state = object()

    def __repr__(self):
        return '<Guest %s>' % self.__dict__.get('id')


class ObjectOutput(unittest.TestCase):
    class Sio:
        output_required = ('id', 'name')
        output_optional = (sio.Date('born'), 'email')

    def test_an_object_is_rendered_through_the_output_elements(self):
        row = Row(id=1, name='Ann', born=datetime.date(1990, 1, 2), password='x')
        got = sio.shape_output(self.Sio, row)
        self.assertEqual(got, {'id': 1, 'name': 'Ann', 'born': datetime.date(1990, 1, 2), 'email': None})

    def test_a_list_of_objects(self):
        got = sio.shape_output(self.Sio, [Row(id=1, name='A'), Row(id=2, name='B')])
        self.assertEqual([g['id'] for g in got], [1, 2])
        self.assertNotIn('password', got[0])

    def test_data_is_kept_as_set(self):
        for payload in ({'id': 1, 'x': 2}, [{'id': 1}], 'text', b'b', None, []):
            self.assertEqual(sio.shape_output(self.Sio, payload), payload)
        self.assertIs(sio.shape_output(None, Row(id=1)).__class__, Row)

    def test_a_service_setting_a_row_answers_its_fields(self):
        class GetGuest(sdk.Service):
            SimpleIO = self.Sio

            def handle(self):
                self.response.payload = Row(id=3, name='Cy', born=datetime.date(2000, 2, 3))

        svc = GetGuest()
        sdk.run_service(svc)
        self.assertEqual(json.loads(json.dumps(svc.response.payload, default=sio.output_value)),
                         {'id': 3, 'name': 'Cy', 'born': '2000-02-03', 'email': None})


if __name__ == '__main__':
    unittest.main()
