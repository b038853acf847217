from zato.server.service import Service


class WhoAmI(Service):
    """Answers with the client certificate the channel accepted."""
    name = 'tls.whoami'

    def handle(self):
        cert = self.request.http.client_cert
        self.response.payload = {
            'channel': self.channel.name,
            'client_cert': dict(cert) if cert else None,
            'wsgi_dn': self.wsgi_environ.get('SSL_CLIENT_S_DN'),
        }
