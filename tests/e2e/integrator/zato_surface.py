from zato.server.service import Service, Int


class Echo(Service):
    """SimpleIO, field-by-field payload, invoke, query and headers."""
    name = 'test.echo'

    class SimpleIO:
        input_required = ('user', Int('count'))
        input_optional = ('note',)

    def handle(self):
        self.response.payload.user = self.request.input.user
        self.response.payload.next = self.request.input.count + 1
        self.response.payload.note = self.request.input.note
        self.response.payload.cid_len = len(self.cid)
        self.response.payload.name = Echo.get_name()
        self.response.payload.query = dict(self.request.http.params)
        self.response.payload.agent = self.request.http.headers.get('user-agent', '')
        self.response.payload.details = self.invoke('api.user.get-details', {})
        self.response.headers['X-Echo'] = 'yes'
        self.response.status_code = 201


class Out(Service):
    name = 'test.out'

    def handle(self):
        conn = self.out.rest['local.files'].conn
        r = conn.get(self.cid, params={'name': 'data.json'})
        plain = self.outgoing.plain_http.get('local.files')
        r2 = plain.conn.get(self.cid)
        self.response.payload = {'status': r.status_code, 'data': r.data,
                                 'json': r.json(), 'status2': r2.status_code}
