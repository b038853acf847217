"""SimpleIO: the ``class SimpleIO`` declarations of Zato services, their
element types and how input is parsed, as Zato does it: channel (query)
parameters before the payload, types inferred from names (``is_*`` is a
Bool, ``*_count`` an Int), a leading ``-`` marks an optional element, a
missing optional element is None (or its default)."""

import copy
import datetime
import decimal
import uuid

from bunch import Bunch

from alpharen import model

# Zato's name rules for plain string elements.
BOOL_PREFIXES = ('by_', 'has_', 'is_', 'may_', 'needs_', 'should_')
INT_SUFFIXES = ('_count', '_timeout')
TRUE_VALUES = ('true', '1', 'yes')


class Elem:
    """A SimpleIO element kept as it arrived (Zato's AsIs / Opaque)."""

    def __init__(self, name, default=None, **kwargs):
        self.name = name
        self.default = default

    def convert(self, value):
        return value

    def __str__(self):
        return self.name

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self.name)


AsIs = Opaque = Elem


class Text(Elem):
    def convert(self, value):
        if isinstance(value, bytes):
            return value.decode('utf-8')
        return value if isinstance(value, str) else str(value)


Unicode = Text


class Int(Elem):
    def convert(self, value):
        if value == '':
            return None
        return value if isinstance(value, int) and not isinstance(value, bool) else int(value)


Integer = Int


class Float(Elem):
    def convert(self, value):
        return float(value)


class Decimal(Elem):
    def convert(self, value):
        try:
            return decimal.Decimal(str(value))
        except decimal.InvalidOperation:
            raise ValueError('not a decimal number') from None


class Bool(Elem):
    def convert(self, value):
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in TRUE_VALUES


Boolean = Bool


def _datetime(value):
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    return datetime.datetime.fromisoformat(str(value).strip())


class DateTime(Elem):
    """An ISO 8601 date and time (``2024-05-01T10:20:30Z``)."""

    def convert(self, value):
        return _datetime(value)


class Date(Elem):
    """An ISO 8601 date; a date and time is cut to its date."""

    def convert(self, value):
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return value
        return _datetime(value).date()


class UUID(Elem):
    def convert(self, value):
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class List(Elem):
    """A list; a comma-separated string (a query parameter) is split."""

    def convert(self, value):
        if isinstance(value, (list, tuple)):
            return list(value)
        if isinstance(value, str):
            return [v.strip() for v in value.split(',')] if value else []
        return [value]


CSV = List


class Dict(Elem):
    def convert(self, value):
        if not isinstance(value, dict):
            raise ValueError('not a JSON object')
        return Bunch(value)


class DictList(Elem):
    def convert(self, value):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ValueError('not a list of JSON objects')
        return [Bunch(v) for v in value]


def element(item):
    """(element, optional?) for one declared item: a string or an Elem,
    a leading '-' in its name marks it optional."""
    if isinstance(item, Elem):
        if item.name.startswith('-'):
            item = copy.copy(item)
            item.name = item.name[1:]
            return item, True
        return item, False
    name = str(item)
    optional = name.startswith('-')
    if optional:
        name = name[1:]
    if name.startswith(BOOL_PREFIXES):
        return Bool(name), optional
    if name.endswith(INT_SUFFIXES):
        return Int(name), optional
    return Elem(name), optional


def _items(value):
    if value is None:
        return ()
    return value if isinstance(value, (list, tuple)) else (value,)


def declared(sio, kind):
    """[(Elem, required)] of a SimpleIO class for 'input' or 'output'."""
    out = []
    for item in _items(getattr(sio, kind + '_required', None)):
        out.append((element(item)[0], True))
    for item in _items(getattr(sio, kind + '_optional', None)):
        out.append((element(item)[0], False))
    value = getattr(sio, kind, None)
    if model.is_model(value):
        return out + model.elements(value)
    for item in _items(value):
        el, optional = element(item)
        out.append((el, not optional))
    return out


class InputError(ValueError):
    """Input that does not match the SimpleIO declaration (a 400)."""


def parse_input(sio, payload, params):
    """The service's ``request.input`` from its payload and channel
    parameters. Every missing or invalid element is named at once."""
    elems = declared(sio, 'input')
    source = payload if isinstance(payload, dict) else {}
    default_value = getattr(sio, 'default_value', None)
    values, missing, invalid = Bunch(), [], []
    for el, required in elems:
        if el.name in params:
            raw = params[el.name]
        elif el.name in source:
            raw = source[el.name]
        else:
            if required:
                missing.append(el.name)
            else:
                values[el.name] = el.default if el.default is not None else default_value
            continue
        try:
            values[el.name] = None if raw is None else el.convert(raw)
        except (TypeError, ValueError):
            invalid.append('%s (%s expected)' % (el.name, type(el).__name__))
    problems = []
    if missing:
        problems.append('Missing required input element: %s' % ', '.join(missing))
    if invalid:
        problems.append('Invalid input element: %s' % ', '.join(invalid))
    if problems:
        raise InputError('; '.join(problems))
    cls = getattr(sio, 'input', None)
    return cls.from_dict(values) if model.is_model(cls) else values


def output_value(value):
    """JSON for what SimpleIO types produce (dates as ISO 8601) and for
    Models (their fields)."""
    if isinstance(value, model.Model):
        return value.to_dict()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


_PLAIN = (dict, list, tuple, str, bytes, bytearray, int, float, bool, type(None))


def _is_object(value):
    """An object whose attributes are the output (an SQLAlchemy row, a
    Model, any class instance), not data that is JSON already."""
    return not isinstance(value, _PLAIN) and not isinstance(value, (datetime.date, datetime.time,
                                                                    decimal.Decimal, uuid.UUID))


def _object_output(obj, elems):
    # As Zato's SimpleIO payload: each output element read by name from
    # the object; one it lacks is None.
    return Bunch((el.name, getattr(obj, el.name, None)) for el, _required in elems)


def shape_output(sio, payload):
    """The response payload as Zato renders a SimpleIO service's: an
    object (or a list of objects) set as the payload becomes its output
    elements read as attributes. Dicts and other data are kept as set."""
    if sio is None:
        return payload
    elems = declared(sio, 'output')
    if not elems or model.is_model(getattr(sio, 'output', None)):
        return payload
    if _is_object(payload) and not hasattr(payload, 'tag'):
        return _object_output(payload, elems)
    if isinstance(payload, (list, tuple)) and payload and all(_is_object(v) for v in payload):
        return [_object_output(v, elems) for v in payload]
    return payload
