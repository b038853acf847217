"""E-mail: ``self.email.smtp.get('alerts').conn.send(msg)`` as in Zato.

A message goes to the node's own mail service (ARMAIL) on its loopback
SMTP listener, the way the node's other mail does: the listener answers
only once the message is on disk in the spool, and the mail service
relays it and retries until the relay takes it. So ``send()`` returning
means the message is durable, not that it was delivered.
"""

import os

# email, mimetypes and smtplib are imported where a message is built or
# sent: most services send none, and they are a fifth of a worker's start.

from alpharen.zatoapi import ZatoAPI

# name -> {'name', 'from'} and the listener's port, set by the worker.
_defs = {}
_listener = {'port': 25}


class SMTPMessage:
    """Zato's message (``zato.common.api.SMTPMessage``, older Zato's
    ``EMailMessage``): ``to``, ``cc``, ``bcc`` as a list or a
    comma-separated string; ``attach(name, contents)``."""

    def __init__(self, from_=None, to=None, subject='', body='', attachments=None, cc=None, bcc=None,
                 is_html=False, headers=None, charset='utf8', is_rfc2231=True):
        self.from_ = from_
        self.to = to
        self.subject = subject
        self.body = body
        self.attachments = attachments or []
        self.cc = cc
        self.bcc = bcc
        self.is_html = is_html
        self.headers = headers or {}
        self.charset = charset
        self.is_rfc2231 = is_rfc2231

    def attach(self, name, contents):
        self.attachments.append({'name': name, 'contents': contents})


EMailMessage = SMTPMessage


class MailError(Exception):
    """The node's mail service did not take the message."""


def _addresses(value):
    import email.utils
    if not value:
        return []
    if isinstance(value, str):
        value = [value]
    return [a for _, a in email.utils.getaddresses([str(v) for v in value]) if a]


def build(msg, sender):
    """The RFC 5322 message and its envelope recipients (Bcc only there)."""
    import email.message
    import email.policy
    import mimetypes
    out = email.message.EmailMessage(policy=email.policy.SMTP)
    skip = {'from', 'to', 'cc', 'bcc', 'subject'}
    out['From'] = sender
    for key, value in (('To', msg.to), ('Cc', msg.cc)):
        if value:
            out[key] = value if isinstance(value, str) else ', '.join(value)
    out['Subject'] = msg.subject or ''
    for key, value in (msg.headers or {}).items():
        if key.lower() not in skip:
            out[key] = str(value)
    body = msg.body or ''
    if isinstance(body, bytes):
        body = body.decode(msg.charset or 'utf-8', 'replace')
    out.set_content(body, subtype='html' if msg.is_html else 'plain', charset='utf-8')
    for att in msg.attachments or []:
        contents = att['contents']
        if isinstance(contents, str):
            contents = contents.encode('utf-8')
        # The built-in table: the workers may not read /etc/mime.types.
        ext = os.path.splitext(att['name'])[1].lower()
        kind = mimetypes.types_map.get(ext, 'application/octet-stream')
        main, sub = kind.split('/', 1)
        out.add_attachment(bytes(contents), maintype=main, subtype=sub, filename=att['name'])
    rcpts = _addresses(msg.to) + _addresses(msg.cc) + _addresses(msg.bcc)
    return out, rcpts


class SMTPConnection:
    """One ``[[integrator.outgoing_smtp]]`` sender."""

    def __init__(self, name, default_from):
        self.name = name
        self.default_from = default_from

    def send(self, msg, from_=None):
        """Queues ``msg`` in the node's mail spool; raises MailError when
        the mail service is not reachable or refuses it (Zato only logs)."""
        import email.utils
        import smtplib
        sender = from_ or msg.from_ or (msg.headers or {}).get('From') or self.default_from
        out, rcpts = build(msg, sender)
        if not rcpts:
            raise MailError('outgoing SMTP connection %r: the message has no recipients' % self.name)
        port = _listener['port']
        envelope_from = email.utils.parseaddr(sender)[1] or self.default_from
        try:
            with smtplib.SMTP('127.0.0.1', port, timeout=30) as smtp:
                smtp.send_message(out, from_addr=envelope_from, to_addrs=rcpts)
        except (smtplib.SMTPException, OSError) as e:
            raise MailError("outgoing SMTP connection %r: the node's mail service (127.0.0.1:%d) "
                            'did not take the message: %s' % (self.name, port, e)) from None


class _Wrapper:
    def __init__(self, conn):
        self.conn = conn
        self.config = {'name': conn.name, 'from': conn.default_from}


class SMTPStore(ZatoAPI):
    """``self.email.smtp``: name → an object whose ``conn`` sends."""

    zato_path = 'self.email.smtp'
    zato_supported = 'get, [name]'

    def __getitem__(self, name):
        d = _defs.get(name)
        if d is None:
            raise KeyError('no outgoing SMTP connection is named %r (configured: %s)'
                           % (name, ', '.join(sorted(_defs)) or 'none'))
        return _Wrapper(SMTPConnection(name, d['from']))

    def get(self, name, *args, **kwargs):
        return self[name]

    def __contains__(self, name):
        return name in _defs


class EMailAPI(ZatoAPI):
    """``self.email``: SMTP senders; IMAP is not provided."""

    zato_path = 'self.email'
    zato_supported = 'smtp'

    def __init__(self):
        self.smtp = SMTPStore()


def sync(connectors):
    """The senders of a sync frame and the mail listener's port."""
    _defs.clear()
    _defs.update({c['name']: c for c in connectors.get('smtp', [])})
    _listener['port'] = connectors.get('mail_port', 25)
