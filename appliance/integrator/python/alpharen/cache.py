"""Zato's builtin caches (``self.cache``) on the integrator's KV store.

Zato's builtin cache holds Python objects in the server's memory; here
the entries live in the KV store (shared by every worker, kept over
restarts), so values are stored in a tagged JSON form that brings back
``datetime``, ``date``, ``time``, ``Decimal``, ``UUID``, bytes, tuples,
sets and dicts with non-string keys unchanged. Each entry keeps Zato's
metadata (hits, last read and write, expiry) for ``get(key,
details=True)``.
"""

import base64
import datetime
import decimal
import math
import time as _time
import uuid

from alpharen.zatoapi import NotSupported, ZatoAPI

TAG = '$zato'
# Marks a stored entry (value plus metadata); other stored values are
# plain JSON written before entries existed.
ENTRY = '$zato_cache_entry'
SUPPORTED = ('None, bool, int, float, str, bytes, list, tuple, set, dict, datetime, date, time, '
             'Decimal, UUID')


class CacheValueError(TypeError):
    """A value the cache cannot store (named with its type and key)."""


def encode(value, key):
    """A JSON-able form of `value`; CacheValueError for what has none."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: 'float', 'v': repr(value)}
    if isinstance(value, datetime.datetime):
        return {TAG: 'datetime', 'v': value.isoformat()}
    if isinstance(value, datetime.date):
        return {TAG: 'date', 'v': value.isoformat()}
    if isinstance(value, datetime.time):
        return {TAG: 'time', 'v': value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {TAG: 'decimal', 'v': str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: 'uuid', 'v': str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {TAG: 'bytes', 'v': base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        return [encode(v, key) for v in value]
    if isinstance(value, tuple):
        return {TAG: 'tuple', 'v': [encode(v, key) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {TAG: 'set', 'v': [encode(v, key) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and TAG not in value and ENTRY not in value:
            return {k: encode(v, key) for k, v in value.items()}
        return {TAG: 'dict', 'v': [[encode(k, key), encode(v, key)] for k, v in value.items()]}
    raise CacheValueError('cache key %r: a value of type %s cannot be stored in the cache; it holds '
                          '%s and lists, tuples, sets and dicts of them' % (key, type(value).__name__,
                                                                          SUPPORTED))


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


_DECODERS = {
    'float': float,
    'datetime': datetime.datetime.fromisoformat,
    'date': datetime.date.fromisoformat,
    'time': datetime.time.fromisoformat,
    'decimal': decimal.Decimal,
    'uuid': uuid.UUID,
    'bytes': base64.b64decode,
}


def decode(data):
    """The value `encode` was given."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(TAG)
    if tag is None:
        return {k: decode(v) for k, v in data.items()}
    if tag in _DECODERS:
        return _DECODERS[tag](data['v'])
    items = [decode(v) for v in data['v']] if tag in ('tuple', 'set') else None
    if tag == 'tuple':
        return tuple(items)
    if tag == 'set':
        return set(items)
    return {_hashable(decode(k)): decode(v) for k, v in data['v']}


class Entry:
    """Zato's cache ``Entry``: the value and its metadata (times are
    seconds since the epoch, 0.0 for never; ``expiry`` 0.0 is none)."""

    FIELDS = ('key', 'value', 'last_read', 'prev_read', 'last_write', 'prev_write', 'expiry',
              'expires_at', 'hits', 'position')

    def __init__(self, key=None, value=None, **meta):
        self.key = key
        self.value = value
        self.last_read = self.prev_read = self.last_write = self.prev_write = 0.0
        self.expiry = self.expires_at = 0.0
        self.hits = 0
        # Zato's position in its LRU index; the KV store keeps none.
        self.position = 0
        for name, v in meta.items():
            if name in self.FIELDS:
                setattr(self, name, v)

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    def __repr__(self):
        return '<Entry key=%r hits=%d expiry=%s>' % (self.key, self.hits, self.expiry)


def stored(entry):
    """The JSON kept in the KV store for an Entry."""
    out = {name: getattr(entry, name) for name in Entry.FIELDS if name not in ('key', 'value', 'position')}
    out[ENTRY] = 1
    out['value'] = encode(entry.value, entry.key)
    return out


def loaded(key, data):
    """The Entry for what the KV store holds (a plain value written
    before entries existed has no metadata)."""
    if isinstance(data, dict) and data.get(ENTRY) == 1:
        meta = {k: v for k, v in data.items() if k not in (ENTRY, 'value')}
        return Entry(key, decode(data.get('value')), **meta)
    return Entry(key, data)


def after_read(entry, now):
    """The entry after a hit, as Zato updates it (its expiry extended,
    Zato's default extend_expiry_on_get)."""
    entry.prev_read, entry.last_read = entry.last_read, now
    entry.hits += 1
    if entry.expiry:
        entry.expires_at = now + entry.expiry
    return entry


def after_write(old, key, value, expiry, now):
    """The entry a set makes: a new one, or `old` updated (its hits and
    reads kept, as in Zato)."""
    entry = old if old is not None else Entry(key)
    entry.key, entry.value = key, value
    entry.prev_write, entry.last_write = entry.last_write, now
    entry.expiry = float(expiry or 0.0)
    entry.expires_at = now + entry.expiry if entry.expiry else 0.0
    return entry


class Cache(ZatoAPI):
    """One named builtin cache, in its own KV namespace (``cache`` for
    the default one)."""

    zato_path = 'self.cache.default'
    zato_supported = 'get, set, delete, expire, exists, keys, in, [key], del [key]'

    def __init__(self, namespace, kv_factory):
        self.namespace = namespace
        self._kv = kv_factory(namespace)

    def _entry(self, key):
        raw = self._kv.get(key)
        return None if raw is None else (raw, loaded(key, raw))

    def get(self, key, default=None, details=False):
        """The value (or the Entry with details=True); `default` when
        the key is missing or expired."""
        found = self._entry(key)
        if found is None:
            return default
        raw, entry = found
        entry = after_read(entry, _time.time())
        # One try: a concurrent write wins and the read is not counted.
        self._kv.cas(key, raw, stored(entry), ttl=entry.expiry or None)
        return entry if details else entry.value

    def set(self, key, value, expiry=0.0, details=False, ttl=None, **kwargs):
        """Stores `value` for `expiry` seconds (0: no expiry); the Entry
        with details=True."""
        if ttl is not None:
            expiry = ttl
        found = self._entry(key)
        entry = after_write(found[1] if found else None, key, value, expiry, _time.time())
        self._kv.set(key, stored(entry), ttl=entry.expiry or None)
        return entry if details else True

    def expire(self, key, expiry=0.0):
        """Makes the key expire `expiry` seconds from now."""
        found = self._entry(key)
        if found is None:
            raise KeyError(key)
        self.set(key, found[1].value, expiry)

    def delete(self, key, *args, **kwargs):
        return self._kv.delete(key)

    def exists(self, key):
        return self._kv.exists(key)

    def keys(self, prefix=''):
        return self._kv.keys(prefix)

    def __getitem__(self, key):
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        self.delete(key)

    def __contains__(self, key):
        return self.exists(key)


class CacheAPI(ZatoAPI):
    """``self.cache``: ``self.cache.default`` and
    ``self.cache.get_cache('builtin', NAME)`` as in Zato; the default
    cache's calls work on ``self.cache`` itself too."""

    zato_path = 'self.cache'

    def __init__(self, kv_factory):
        self._kv_factory = kv_factory
        self.default = Cache('cache', kv_factory)

    def get_cache(self, cache_type='builtin', name='default'):
        if cache_type != 'builtin':
            raise NotSupported('`self.cache.get_cache(%r, ...)` is not supported yet: only builtin '
                               'caches' % cache_type)
        return self.default if name == 'default' else Cache('cache.' + name, self._kv_factory)

    def __getitem__(self, name):
        return self.get_cache('builtin', name)

    def __getattr__(self, name):
        if name in ('get', 'set', 'delete', 'expire', 'exists', 'keys'):
            return getattr(self.default, name)
        return ZatoAPI.__getattr__(self, name)
