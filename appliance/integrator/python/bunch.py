"""``import bunch``: the Bunch that Zato ships to every service, a dict
whose keys are also attributes, with the ``bunch`` package's helpers."""

__all__ = ['Bunch', 'bunchify', 'unbunchify']


class Bunch(dict):
    """A dict whose keys are also attributes (``self.request.input.id``)."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value

    def __delattr__(self, key):
        try:
            del self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __repr__(self):
        return '%s(%s)' % (type(self).__name__, ', '.join(
            '%s=%r' % (k, v) for k, v in sorted(self.items(), key=lambda kv: str(kv[0]))))

    def __dir__(self):
        return [k for k in self if isinstance(k, str)]

    def toDict(self):
        return unbunchify(self)

    @staticmethod
    def fromDict(d):
        return bunchify(d)

    def copy(self):
        return type(self)(self)


def bunchify(x):
    """Recursively turns dicts (inside lists and tuples too) into Bunches."""
    if isinstance(x, dict):
        return Bunch((k, bunchify(v)) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return type(x)(bunchify(v) for v in x)
    return x


def unbunchify(x):
    """Recursively turns Bunches back into plain dicts."""
    if isinstance(x, dict):
        return {k: unbunchify(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(unbunchify(v) for v in x)
    return x
