"""Redis hashes, lists, sets and key expiry for ``self.kvdb.conn``, as
redis-py's ``StrictRedis`` with ``decode_responses=True`` (Zato's kvdb)
answers them: values come back as ``str``, a missing key is ``None`` (or
an empty dict, list or set, or 0), counts are ``int``. Every command is
one request to the integrator, which runs it in one transaction on the
node's KV store: nothing is read, changed and written back from here."""

import datetime


class ResponseError(Exception):
    """What Redis answers to a command it refuses, as redis-py's
    ``redis.exceptions.ResponseError``: WRONGTYPE, a field that is not an
    integer, a wrong number of arguments."""


class DataError(ValueError):
    """A value redis-py would not send (redis-py's ``redis.exceptions.DataError``)."""


def encode(value):
    """A value as redis-py sends it: str as is, bytes as UTF-8 text, int
    and float as their repr; anything else is refused as redis-py does."""
    if isinstance(value, bool) or value is None or not isinstance(value, (str, bytes, bytearray,
                                                                            memoryview, int, float)):
        raise DataError('Invalid input of type: %r. Convert to a bytes, string, int or float first.'
                        % type(value).__name__)
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode('utf-8')
        except UnicodeDecodeError:
            raise DataError('bytes stored in self.kvdb.conn must be UTF-8 text (values come back '
                            'as str, as with Zato\'s decode_responses=True)') from None
    return value if isinstance(value, str) else repr(value)


def _seconds(time, ms=False):
    if isinstance(time, datetime.timedelta):
        return int(time.total_seconds() * (1000 if ms else 1))
    return int(time)


class RedisTypes:
    """The commands; the class that mixes this in provides ``_cmd(cmd, key, *args)``."""

    REDIS_COMMANDS = (
        'hset, hsetnx, hmset, hget, hmget, hgetall, hdel, hexists, hkeys, hvals, hlen, hincrby, '
        'lpush, rpush, lpop, rpop, lrange, lindex, llen, ltrim, lrem, sadd, srem, smembers, '
        'sismember, scard, expire, pexpire, ttl, pttl, persist, type')

    # ---- hashes
    def hset(self, name, key=None, value=None, mapping=None, items=None):
        pairs = []
        if key is not None:
            pairs += [key, value]
        for k, v in (mapping or {}).items():
            pairs += [k, v]
        pairs += list(items or ())
        if not pairs:
            raise DataError("'hset' with no key value pairs")
        return self._cmd('hset', name, *[encode(p) for p in pairs])

    def hsetnx(self, name, key, value):
        return self._cmd('hsetnx', name, encode(key), encode(value))

    def hmset(self, name, mapping):
        self.hset(name, mapping=mapping)
        return True

    def hget(self, name, key):
        return self._cmd('hget', name, encode(key))

    def hmget(self, name, keys, *args):
        keys = [keys] if isinstance(keys, (str, bytes)) else list(keys)
        return self._cmd('hmget', name, *[encode(k) for k in keys + list(args)])

    def hgetall(self, name):
        return self._cmd('hgetall', name)

    def hdel(self, name, *keys):
        return self._cmd('hdel', name, *[encode(k) for k in keys])

    def hexists(self, name, key):
        return self._cmd('hexists', name, encode(key))

    def hkeys(self, name):
        return self._cmd('hkeys', name)

    def hvals(self, name):
        return self._cmd('hvals', name)

    def hlen(self, name):
        return self._cmd('hlen', name)

    def hincrby(self, name, key, amount=1):
        return self._cmd('hincrby', name, encode(key), int(amount))

    # ---- lists
    def lpush(self, name, *values):
        return self._cmd('lpush', name, *[encode(v) for v in values])

    def rpush(self, name, *values):
        return self._cmd('rpush', name, *[encode(v) for v in values])

    def lpop(self, name, count=None):
        return self._cmd('lpop', name, *([] if count is None else [int(count)]))

    def rpop(self, name, count=None):
        return self._cmd('rpop', name, *([] if count is None else [int(count)]))

    def lrange(self, name, start, end):
        return self._cmd('lrange', name, int(start), int(end))

    def lindex(self, name, index):
        return self._cmd('lindex', name, int(index))

    def llen(self, name):
        return self._cmd('llen', name)

    def ltrim(self, name, start, end):
        return self._cmd('ltrim', name, int(start), int(end))

    def lrem(self, name, count, value):
        return self._cmd('lrem', name, int(count), encode(value))

    # ---- sets
    def sadd(self, name, *values):
        return self._cmd('sadd', name, *[encode(v) for v in values])

    def srem(self, name, *values):
        return self._cmd('srem', name, *[encode(v) for v in values])

    def smembers(self, name):
        return set(self._cmd('smembers', name))

    def sismember(self, name, value):
        return self._cmd('sismember', name, encode(value))

    def scard(self, name):
        return self._cmd('scard', name)

    # ---- keys
    def expire(self, name, time):
        return self._cmd('expire', name, _seconds(time))

    def pexpire(self, name, time):
        return self._cmd('pexpire', name, _seconds(time, ms=True))

    def ttl(self, name):
        return self._cmd('ttl', name)

    def pttl(self, name):
        return self._cmd('pttl', name)

    def persist(self, name):
        return self._cmd('persist', name)

    def type(self, name):
        return self._cmd('type', name)
