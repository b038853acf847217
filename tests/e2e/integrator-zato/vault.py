# self.crypto as Zato services use it: Fernet tokens with the server's key
# and passlib's pbkdf2_sha512 hashes.
from zato.server.service import Service


class Encrypt(Service):
    class SimpleIO:
        input_required = ('text',)

    def handle(self):
        self.response.payload = {'token': self.crypto.encrypt(self.request.input.text, needs_str=True)}


class Decrypt(Service):
    class SimpleIO:
        input_required = ('token',)

    def handle(self):
        self.response.payload = {'text': self.crypto.decrypt(self.request.input.token)}


class HashPassword(Service):
    class SimpleIO:
        input_required = ('password',)
        input_optional = ('hashed',)

    def handle(self):
        inp = self.request.input
        made = self.crypto.hash_secret(inp.password)
        self.response.payload = {'hash': made, 'verified': self.crypto.verify_hash(inp.password, made),
                                 'given_verified': bool(inp.hashed) and self.crypto.verify_hash(inp.password, inp.hashed)}
