"""``self.crypto``: Zato's CryptoManager as services call it.

``encrypt``/``decrypt`` make and read Fernet tokens with the node's key;
the integrator does the AES and HMAC (Rust) and keeps the key in the
secret store, so the worker never holds it. ``hash_secret``/
``verify_hash`` are passlib's ``pbkdf2_sha512`` (Zato's ``zato.default``
scheme: 120,000 rounds, 64-byte salt) with hashlib; the hashes read and
verify in passlib and in Zato."""

import base64
import hashlib
import hmac
import os

from alpharen.zatoapi import ZatoAPI

# Zato's prefix of encrypted config values, which decrypt() drops.
SECRETS_PREFIX = b'zato.secf.'
# Zato's default scheme (create_server.py's [hash_secret]).
HASH_SCHEMES = {'zato.default': (120000, 64)}


class InvalidToken(Exception):
    """A token this node's key did not make (``cryptography.fernet.InvalidToken``)."""


def _ab64(raw):
    """passlib's adapted base64: no padding, '.' for '+'."""
    return base64.b64encode(raw).decode('ascii').rstrip('=').replace('+', '.')


def _ab64_decode(text):
    text = text.replace('.', '+')
    return base64.b64decode(text + '=' * (-len(text) % 4), validate=True)


def _utf8(data):
    return data if isinstance(data, bytes) else str(data).encode('utf-8')


def pbkdf2_sha512(secret, rounds, salt):
    """The ``$pbkdf2-sha512$rounds$salt$checksum`` string of passlib."""
    digest = hashlib.pbkdf2_hmac('sha512', _utf8(secret), salt, rounds)
    return '$pbkdf2-sha512$%d$%s$%s' % (rounds, _ab64(salt), _ab64(digest))


class Crypto(ZatoAPI):
    zato_path = 'self.crypto'
    zato_supported = ('encrypt, decrypt, hash_secret, verify_hash, generate_key, generate_secret, '
                      'generate_password')

    def __init__(self, call):
        self._call = call

    def encrypt(self, data, needs_str=False):
        token = self._call('crypto.encrypt', data=base64.b64encode(_utf8(data)).decode('ascii'))
        return token if needs_str else token.encode('ascii')

    def decrypt(self, encrypted):
        encrypted = _utf8(encrypted)
        if encrypted.startswith(SECRETS_PREFIX):
            encrypted = encrypted.replace(SECRETS_PREFIX, b'')
        try:
            plain = self._call('crypto.decrypt', token=encrypted.decode('ascii', 'replace'))
        except Exception as e:
            if getattr(e, 'code', None) == 'invalid_token':
                raise InvalidToken(str(e)) from None
            raise
        return base64.b64decode(plain).decode('utf-8')

    def hash_secret(self, data, name='zato.default'):
        rounds, salt_size = HASH_SCHEMES[name]
        return pbkdf2_sha512(data, rounds, os.urandom(salt_size))

    def verify_hash(self, given, expected, name='zato.default'):
        """As passlib's verify: the rounds and salt come from ``expected``;
        a string that is no such hash is a ValueError. An unknown scheme
        name is a KeyError, as in Zato."""
        HASH_SCHEMES[name]  # noqa: B018 - Zato's KeyError for an unknown scheme
        parts = str(expected).split('$')
        try:
            if len(parts) != 5 or parts[0] or parts[1] != 'pbkdf2-sha512':
                raise ValueError
            rounds, salt = int(parts[2]), _ab64_decode(parts[3])
            _ab64_decode(parts[4])
        except ValueError:
            raise ValueError('not a valid pbkdf2_sha512 hash') from None
        return hmac.compare_digest(pbkdf2_sha512(given, rounds, salt).encode(), _utf8(expected))

    @staticmethod
    def generate_key():
        return base64.urlsafe_b64encode(os.urandom(32))

    @staticmethod
    def generate_secret(bits=256, as_str=False):
        value = base64.urlsafe_b64encode(os.urandom(int(bits / 8)))
        return value.decode('utf8') if as_str else value

    @staticmethod
    def generate_password(bits=192, to_str=False):
        value = Crypto.generate_secret(bits)
        return value.decode('utf8') if to_str else value
