"""How Zato names services and picks the method that handles a request,
reimplemented from Zato's behaviour so names and dispatch match it."""

import re

# Zato's uncamelify: a break before an upper-case letter that follows a
# lower-case one, or that starts a capitalised word (not at the start).
_UNCAMELIFY = re.compile(r'((?<=[a-z])[A-Z]|(?<!\A)[A-Z](?=[a-z]))')

# Channels on which Zato dispatches on the HTTP verb: REST channels and
# self.invoke() (whose request has no verb unless one is passed along).
HTTP_CHANNELS = ('http-soap', 'invoke')

# Attribute that keeps a Service subclass from being deployed, as in Zato.
DONT_DEPLOY_ATTR = 'zato_dont_import'


def uncamelify(s, separator='-'):
    """``HelloHowAreYouGOOD`` -> ``hello-how-are-you-good``."""
    return separator.join(e.lower() for e in _UNCAMELIFY.sub(r' \1', s).split())


def service_name(module, class_name):
    """The name Zato gives class ``class_name`` of the file whose name
    (without ``.py``) is ``module``: ``cors-options`` + ``ConfiguringCORS``
    -> ``cors-options.configuring-cors``."""
    split = uncamelify('%s.%s' % (module, class_name)).split('.')
    path, last = split[:-1], split[-1]
    path = [e.replace('_', '-') for e in path]
    last = last[1:] if last.startswith('-') else last
    last = last.replace('.-', '.').replace('_-', '_')
    return '%s.%s' % ('.'.join(path), last)


def verb_handlers(cls):
    """{VERB: method} for every ``handle_VERB`` the class has or inherits;
    the verb is the name's tail as written (``handle_get`` is 'get')."""
    return {name[len('handle_'):]: getattr(cls, name)
            for name in dir(cls) if name.startswith('handle_') and callable(getattr(cls, name, None))}


def handler_for(service, channel, method):
    """The bound method that runs this call, or None for Zato's 405: on an
    HTTP channel a class with any handle_VERB runs only the one for the
    request's verb; otherwise (or without verb handlers) handle()."""
    if channel in HTTP_CHANNELS:
        handlers = verb_handlers(type(service))
        if handlers:
            fn = handlers.get(method)
            return None if fn is None else fn.__get__(service)
    return service.handle
