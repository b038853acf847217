"""Projects: a unit of modules and packages (services and their helpers)
deployed as one version. Its modules are imported under their own names
(`import models`, `from myproj.db import x`) from memory: an import hook
first on sys.meta_path serves exactly the modules of the active units. A
unit's top-level names may not be those of another unit, the standard
library, the SDK or an installed package (the deploy refuses them), so
nothing shadows anything and no unit sees another's helpers by accident.
Helper modules that define no service are imported and not registered."""

import base64
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import traceback

from alpharen import archive, deploycheck


def module_names(path):
    """'myproj/db.py' -> 'myproj.db'; 'myproj/__init__.py' -> 'myproj'."""
    parts = path[:-3].split('/')
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def layout(files):
    """{module name: (file, source, is package)} of a unit; a directory
    without __init__.py is a package all the same (as a namespace package
    would be)."""
    out = {}
    for path, source in files.items():
        out[module_names(path)] = (path, source, path.endswith('/__init__.py'))
        parts = path.split('/')[:-1]
        for i in range(1, len(parts) + 1):
            name = '.'.join(parts[:i])
            out.setdefault(name, ('/'.join(parts[:i]) + '/__init__.py', '', True))
    return out


def top_names(files):
    return sorted({module_names(p).split('.')[0] for p in files})


class UnitFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the active units' modules; every other import goes on to the
    standard library, the SDK and the installed packages."""

    def __init__(self):
        self.modules = {}  # module name -> (unit, file, source, is package)

    def find_spec(self, fullname, path=None, target=None):
        entry = self.modules.get(fullname)
        if entry is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=entry[1], is_package=entry[3])

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        _, filename, source, _ = self.modules[module.__name__]
        module.__file__ = filename
        exec(compile(source, filename, 'exec'), module.__dict__)

    def get_source(self, fullname):
        return self.modules[fullname][2]

    def remove(self, unit):
        for name in [n for n, e in self.modules.items() if e[0] == unit]:
            del self.modules[name]
            sys.modules.pop(name, None)

    def add(self, unit, files):
        self.remove(unit)
        for name, (path, source, is_pkg) in layout(files).items():
            self.modules[name] = (unit, path, source, is_pkg)


FINDER = UnitFinder()


def _install():
    if FINDER not in sys.meta_path:
        sys.meta_path.insert(0, FINDER)


def _where(exc, files):
    """(file, line) of an exception in the unit's own code."""
    if isinstance(exc, SyntaxError) and exc.filename in files:
        return exc.filename, exc.lineno
    at = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename in files:
            at = (frame.filename, frame.lineno)
    return at


def load(unit, files, classes_of):
    """Imports every module of a unit (after dropping its old version);
    returns (service classes, [(file, line, message)])."""
    _install()
    FINDER.add(unit, files)
    classes, problems, modules = [], [], layout(files)
    for name in sorted(modules):
        try:
            mod = importlib.import_module(name)
        except BaseException as e:  # noqa: B902 - user code may raise anything
            f, line = _where(e, files)
            problem = (f or modules[name][0], line, '%s: %s' % (type(e).__name__, e))
            if problem not in problems:
                problems.append(problem)
            continue
        classes.extend(classes_of(mod, name.rsplit('.', 1)[-1]))
    return classes, problems


def remove(unit):
    FINDER.remove(unit)


def static_problems(files):
    """Every problem found without running anything: syntax (Python 2
    too), unsupported Zato APIs, imports that cannot be satisfied, and
    top-level names that would shadow an existing module."""
    tops = top_names(files)
    problems = []
    for top in tops:
        # Only sys.path is asked: the units' own hook would find this unit.
        if top in sys.stdlib_module_names or importlib.machinery.PathFinder.find_spec(top):
            where = 'the standard library' if top in sys.stdlib_module_names else 'an installed package'
            path = next(p for p in sorted(files) if module_names(p).split('.')[0] == top)
            problems.append((path, None, 'the name %s is already a module of %s; rename it'
                             % (top, where)))
    for path in sorted(files):
        try:
            found = deploycheck.scan(files[path], path, local=tops)
        except SyntaxError as e:
            problems.append((path, e.lineno, 'SyntaxError: %s' % e.msg))
            continue
        problems.extend((path, line, message) for line, message in found)
    return problems


def refusal(unit_file, problems):
    first = problems[0]
    return {'ok': False, 'file': first[0] or unit_file, 'line': first[1],
            'error': first[2] if len(problems) == 1 else '%d problems' % len(problems),
            'problems': [{'file': f or unit_file, 'line': line, 'message': message}
                         for f, line, message in problems], 'traceback': ''}


def validate(msg, classes_of, describe):
    """The `validate` op for a unit: `zip` (base64 of a zip) or `files`.
    Answers like a single file's validation, with every problem's file,
    and the unit's files so the integrator stores exactly what ran."""
    unit_file = msg['file']
    try:
        if 'zip' in msg:
            files = archive.project_files(base64.b64decode(msg['zip']), unit_file)
        else:
            files = archive.check_project(dict(msg['files']), unit_file)
    except archive.Refused as e:
        return refusal(unit_file, [(None, None, str(e))])
    problems = static_problems(files)
    if problems:
        return refusal(unit_file, problems)
    classes, problems = load(msg['module'], files, classes_of)
    if problems:
        return refusal(unit_file, problems)
    if not classes:
        return refusal(unit_file, [(None, None, 'no service is defined in %s: a service is a class '
                                    'deriving from Service'
                                    % unit_file)])
    services, problems = describe(classes)
    if problems:
        return refusal(unit_file, [(None, line, message) for line, message in problems])
    return {'ok': True, 'services': services, 'files': files}
