"""What a service gets for a part of Zato's API the SDK lacks: an error
that names the API as the service wrote it, not one of the SDK's classes."""


class NotSupported(AttributeError, NotImplementedError):
    """A Zato API the ALPHA-REN integrator does not provide (yet). An
    AttributeError too, so hasattr() and getattr(x, name, default) work."""


class ZatoAPI:
    """Base of the objects services reach as ``self.X``: an unknown
    attribute names ``self.X.name`` (``zato_path``)."""

    zato_path = 'self'
    zato_supported = ''

    def __getattr__(self, name):
        if name.startswith('_'):
            raise AttributeError(name)
        more = '; supported: %s' % self.zato_supported if self.zato_supported else ''
        raise NotSupported('`%s.%s` is not supported yet%s' % (self.zato_path, name, more))
