"""Zato 3.2's ``Model``: a dataclass as a SimpleIO declaration
(``input = GetClientRequest``). Its fields become SimpleIO elements typed
by their annotations, so input is checked and converted as for any
declaration (every missing or invalid element named in one 400), and
``request.input`` is an instance of the class; a Model in
``response.payload`` is sent as its fields."""

import dataclasses
import datetime
import decimal
import json
import typing
import uuid

# An annotation (a type, or its name as written in quotes) -> the
# SimpleIO element class's name in alpharen.sio.
_ELEMS = {
    int: 'Int', 'int': 'Int', float: 'Float', 'float': 'Float', bool: 'Bool', 'bool': 'Bool',
    str: 'Text', 'str': 'Text', list: 'List', 'list': 'List', dict: 'Dict', 'dict': 'Dict',
    datetime.datetime: 'DateTime', 'datetime': 'DateTime', datetime.date: 'Date', 'date': 'Date',
    decimal.Decimal: 'Decimal', uuid.UUID: 'UUID',
}


class Model:
    """Base of Zato's dataclass models; also readable like a dict."""

    def __getitem__(self, name, default=None):
        return getattr(self, name, default)

    def __contains__(self, name):
        return name in self.__dict__

    def get(self, name):
        return getattr(self, name, None)

    def to_dict(self):
        if dataclasses.is_dataclass(self):
            return dataclasses.asdict(self)
        return dict(self.__dict__)

    def to_json(self, default=None):
        from alpharen.sio import output_value
        return json.dumps(self.to_dict(), default=default or output_value)

    def clone(self):
        import copy
        return copy.deepcopy(self)

    @classmethod
    def from_dict(cls, data):
        """An instance with the fields of ``data`` (others ignored); fields
        it lacks get their defaults, or stay unset."""
        out = cls.__new__(cls)
        for f in _fields(cls):
            if f.name in data:
                setattr(out, f.name, data[f.name])
            elif f.default is not dataclasses.MISSING:
                setattr(out, f.name, f.default)
            elif f.default_factory is not dataclasses.MISSING:
                setattr(out, f.name, f.default_factory())
        return out


def _fields(cls):
    return dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()


def is_model(value):
    return isinstance(value, type) and issubclass(value, Model)


def elements(cls):
    """[(Elem, required)] for a Model class's fields."""
    from alpharen import sio
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - names the module cannot resolve: use the annotations as written
        hints = {}
    out = []
    for f in _fields(cls):
        kind = hints.get(f.name, f.type)
        if isinstance(kind, str):
            kind = kind.strip()
        origin = typing.get_origin(kind)
        if origin is not None:
            kind = origin
        elem = getattr(sio, _ELEMS.get(kind, 'Elem'))
        if isinstance(kind, type) and issubclass(kind, Model):
            elem = sio.Dict
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((elem(f.name, default=None if required else f.default), required))
    return out
