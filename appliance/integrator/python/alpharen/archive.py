"""Zip archives the integrator takes from users: project zips (a unit of
modules and packages) and wheels (Python packages). Every entry is checked
before anything is used: no absolute paths, no `..`, no symlinks, no
encrypted entries, bounded count and uncompressed size; a refusal names
the entry. Wheels are also checked against the tags this interpreter runs
(a simple reimplementation of what `packaging.tags` computes).

Run as a program by the integrator (our code, untrusted data) to unpack a
wheel: `archive.py wheel DEST FILENAME < wheel`, one JSON line out."""

import io
import json
import os
import platform
import re
import stat
import sys
import zipfile

# A project unit: its modules travel in the deploy registry and every
# worker's sync frame, so it stays small.
PROJECT_MAX_FILES = 1000
PROJECT_MAX_BYTES = 8 << 20
# A wheel is unpacked on disk once.
WHEEL_MAX_FILES = 20000
WHEEL_MAX_BYTES = 256 << 20

# What zip tools add on their own; skipped in a project zip, never refused.
_JUNK = re.compile(r'(^|/)(__pycache__/.*|__MACOSX/.*|\.DS_Store|[^/]*\.py[co])$')
# The SDK's own top-level names: neither a unit nor a wheel may bring them.
SDK_NAMES = ('alpharen', 'zato', 'bunch')


class Refused(Exception):
    """An archive we do not take; the message names the entry."""


def entry_problem(name):
    """Why an entry's path is unsafe, or None."""
    if not name or '\x00' in name:
        return 'has an empty or NUL-containing name'
    if name.startswith('/') or '\\' in name or re.match(r'^[A-Za-z]:', name):
        return 'is an absolute path'
    if any(part == '..' for part in name.split('/')):
        return 'has a ".." component (it points outside the archive)'
    return None


def checked_entries(zf, what, max_files, max_bytes):
    """The file entries of an open zip (directories left out), each
    checked; raises Refused on the first unsafe one."""
    infos = zf.infolist()
    if len(infos) > max_files:
        raise Refused('%s has %d entries; at most %d are accepted' % (what, len(infos), max_files))
    total, seen, out = 0, set(), []
    for info in infos:
        name = info.filename
        why = entry_problem(name)
        if why:
            raise Refused('%s: entry %r %s' % (what, name, why))
        if stat.S_ISLNK(info.external_attr >> 16):
            raise Refused('%s: entry %r is a symlink; symlinks are not accepted' % (what, name))
        if info.flag_bits & 0x1:
            raise Refused('%s: entry %r is encrypted' % (what, name))
        if name in seen:
            raise Refused('%s: entry %r appears twice' % (what, name))
        seen.add(name)
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_bytes:
            raise Refused('%s: more than %d MiB uncompressed (at entry %r)' % (what, max_bytes >> 20, name))
        out.append(info)
    return out


def read_entry(zf, info, what, budget):
    """The bytes of one entry, never more than its declared size (a zip
    may lie about it)."""
    with zf.open(info) as f:
        data = f.read(budget + 1)
    if len(data) > info.file_size:
        raise Refused('%s: entry %r is larger than it declares' % (what, info.filename))
    return data


def open_zip(data, what):
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as e:
        raise Refused('%s is not a zip archive: %s' % (what, e)) from None


def project_paths_problem(path):
    """Why a module path of a project cannot be imported, or None."""
    parts = path[:-3].split('/')
    bad = [p for p in parts if not p.isidentifier()]
    if bad:
        return 'cannot be imported: %r is not a valid Python module name' % bad[0]
    return None


def strip_wrapper(paths):
    """A zip made of a folder (`zip -r proj.zip proj/`) has everything
    under one directory; when that directory is not itself a package
    (no __init__.py), it is a wrapper and is dropped."""
    tops = {p.split('/', 1)[0] for p in paths}
    if len(tops) == 1 and all('/' in p for p in paths):
        top = tops.pop()
        if top + '/__init__.py' not in paths:
            return {p: p[len(top) + 1:] for p in paths}
    return {p: p for p in paths}


def project_files(data, what):
    """A project zip -> {path: source}; only .py files (plus the tools'
    junk, skipped) are accepted."""
    zf = open_zip(data, what)
    infos = [i for i in checked_entries(zf, what, PROJECT_MAX_FILES, PROJECT_MAX_BYTES)
             if not _JUNK.search(i.filename)]
    for info in infos:
        if not info.filename.endswith('.py'):
            raise Refused('%s: entry %r is not a .py file; a project zip holds Python modules and '
                          'packages only (wheels go to `ctl integrator packages add`)' % (what, info.filename))
    renamed = strip_wrapper([i.filename for i in infos])
    files = {}
    for info in infos:
        raw = read_entry(zf, info, what, PROJECT_MAX_BYTES)
        try:
            files[renamed[info.filename]] = raw.decode('utf-8')
        except UnicodeDecodeError as e:
            raise Refused('%s: entry %r is not UTF-8 text (byte %d)' % (what, info.filename, e.start)) from None
    return check_project(files, what)


def check_project(files, what):
    """The checks a unit's file map passes, from a zip or a directory."""
    if not files:
        raise Refused('%s holds no .py file' % what)
    if len(files) > PROJECT_MAX_FILES:
        raise Refused('%s has %d files; at most %d are accepted' % (what, len(files), PROJECT_MAX_FILES))
    if sum(len(s.encode('utf-8')) for s in files.values()) > PROJECT_MAX_BYTES:
        raise Refused('%s: more than %d MiB of source' % (what, PROJECT_MAX_BYTES >> 20))
    for path in sorted(files):
        why = entry_problem(path) or (None if path.endswith('.py') else 'is not a .py file') \
            or project_paths_problem(path)
        if why:
            raise Refused('%s: %r %s' % (what, path, why))
        top = path.split('/')[0]
        top = top[:-3] if top.endswith('.py') else top
        if top in SDK_NAMES:
            raise Refused('%s: %r would shadow the SDK module %s' % (what, path, top))
    return files


# ---- wheels -------------------------------------------------------------

_WHEEL_NAME = re.compile(r'^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)'
                         r'-(?P<plat>[^-]+)\.whl$')


def environment():
    """What this interpreter runs: implementation, version, glibc, arch."""
    libc = os.confstr('CS_GNU_LIBC_VERSION') if hasattr(os, 'confstr') else None
    glibc = None
    if libc and libc.startswith('glibc '):
        major, minor = libc.split()[1].split('.')[:2]
        glibc = (int(major), int(minor))
    impl = 'cp' if sys.implementation.name == 'cpython' else sys.implementation.name
    return {'impl': impl, 'major': sys.version_info[0], 'minor': sys.version_info[1],
            'glibc': glibc, 'arch': platform.machine(), 'system': sys.platform}


# Old manylinux names and the glibc they mean.
_LEGACY = {'manylinux1': (2, 5), 'manylinux2010': (2, 12), 'manylinux2014': (2, 17)}


def platform_ok(plat, env):
    if plat == 'any':
        return True
    if not env['system'].startswith('linux'):
        return False
    arch = env['arch']
    if plat == 'linux_' + arch:
        return True
    m = re.match(r'^manylinux_(\d+)_(\d+)_(.+)$', plat)
    if m:
        need, parch = (int(m.group(1)), int(m.group(2))), m.group(3)
    else:
        legacy, _, parch = plat.partition('_')
        if legacy not in _LEGACY:
            return False
        need = _LEGACY[legacy]
    return parch == arch and env['glibc'] is not None and need <= env['glibc']


def tag_ok(py, abi, plat, env):
    """One expanded tag (interpreter, ABI, platform) against this node."""
    if not platform_ok(plat, env):
        return False
    major, minor, impl = env['major'], env['minor'], env['impl']
    own = '%s%d%d' % (impl, major, minor)
    if abi == 'none':
        m = re.match(r'^py(\d)(\d*)$', py)
        if m:
            return int(m.group(1)) == major and (not m.group(2) or int(m.group(2)) <= minor)
        return py == own
    if abi == 'abi3':
        m = re.match(r'^%s(\d)(\d+)$' % impl, py)
        return bool(m) and int(m.group(1)) == major and int(m.group(2)) <= minor
    return abi == own and py == own


def wheel_tags(filename):
    """(name, version, [tag strings]) of a wheel file name; Refused when it
    is not one."""
    m = _WHEEL_NAME.match(filename)
    if not m:
        raise Refused('%r is not a wheel file name (NAME-VERSION-PY-ABI-PLATFORM.whl)' % filename)
    tags = ['%s-%s-%s' % (py, abi, plat) for py in m.group('py').split('.')
            for abi in m.group('abi').split('.') for plat in m.group('plat').split('.')]
    return m.group('name'), m.group('version'), tags


def describe(env):
    return '%s %d.%d on %s %s%s' % ('CPython' if env['impl'] == 'cp' else env['impl'], env['major'],
                                   env['minor'], env['system'], env['arch'],
                                   ', glibc %d.%d' % env['glibc'] if env['glibc'] else '')


def check_wheel_name(filename, env):
    """(name, version, the accepted tags) or Refused naming the tag."""
    name, version, tags = wheel_tags(filename)
    ok = [t for t in tags if tag_ok(*t.split('-'), env)]
    if not ok:
        raise Refused('%s: tag %s is not for this node (%s); accepted are pure-Python wheels '
                      '(py3-none-any) and cp%d%d / abi3 wheels for manylinux or linux on %s'
                      % (filename, '.'.join(tags) if len(tags) > 1 else tags[0], describe(env),
                         env['major'], env['minor'], env['arch']))
    return name, version, ok


def wheel_target(path):
    """Where a wheel entry goes under the install directory, or None to
    skip it: `NAME.data/purelib` and `platlib` land at the top, its
    scripts, headers and data are not installed."""
    head, _, rest = path.partition('/')
    if head.endswith('.data'):
        kind, _, inner = rest.partition('/')
        return inner if kind in ('purelib', 'platlib') and inner else None
    return path


def unpack_wheel(data, dest, filename, env=None):
    """Checks and unpacks a wheel into dest (which must not exist)."""
    env = env or environment()
    name, version, tags = check_wheel_name(filename, env)
    zf = open_zip(data, filename)
    infos = checked_entries(zf, filename, WHEEL_MAX_FILES, WHEEL_MAX_BYTES)
    if not any(re.match(r'^[^/]+\.dist-info/WHEEL$', i.filename) for i in infos):
        raise Refused('%s has no .dist-info/WHEEL file; it is not a wheel' % filename)
    tops = set()
    plan = []
    for info in infos:
        target = wheel_target(info.filename)
        if target is None:
            continue
        top = target.split('/')[0]
        top = top[:-3] if top.endswith('.py') else top
        if top in SDK_NAMES:
            raise Refused('%s: entry %r would shadow the SDK module %s' % (filename, info.filename, top))
        if not top.endswith('.dist-info'):
            tops.add(top.split('.')[0])
        plan.append((info, target))
    os.makedirs(dest)
    for info, target in plan:
        path = os.path.join(dest, *target.split('/'))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as out:
            out.write(read_entry(zf, info, filename, WHEEL_MAX_BYTES))
    return {'name': name, 'version': version, 'tags': tags, 'top_level': sorted(tops)}


def main():
    op, dest, filename = sys.argv[1:4]
    try:
        if op != 'wheel':
            raise Refused('unknown operation %r' % op)
        out = dict(unpack_wheel(sys.stdin.buffer.read(), dest, filename), ok=True)
    except Refused as e:
        out = {'ok': False, 'error': str(e)}
    print(json.dumps(out))


if __name__ == '__main__':
    main()
