"""Zip safety of project zips and wheels, wheel tag matching, and project
units: helpers importable, every problem of every file at once."""

import base64
import io
import os
import stat
import tempfile
import unittest
import zipfile

from alpharen import archive, project, worker

ENV = {'impl': 'cp', 'major': 3, 'minor': 11, 'glibc': (2, 36), 'arch': 'x86_64', 'system': 'linux'}


def make_zip(entries, symlink=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        for name, text in entries.items():
            z.writestr(name, text)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, '/etc/passwd')
    return buf.getvalue()


class ZipChecks(unittest.TestCase):
    def refused(self, entries, want, symlink=None):
        with self.assertRaises(archive.Refused) as e:
            archive.project_files(make_zip(entries, symlink), 'p.zip')
        self.assertIn(want, str(e.exception))

    def test_unsafe_entries_are_refused_by_name(self):
        self.refused({'a.py': '', '../x.py': ''}, "entry '../x.py' has a \"..\" component")
        self.refused({'a.py': '', 'a/../../x.py': ''}, "'a/../../x.py'")
        self.refused({'/etc/x.py': ''}, "entry '/etc/x.py' is an absolute path")
        self.refused({'a.py': ''}, "entry 'link.py' is a symlink", symlink='link.py')
        self.refused({'a.py': '', 'data.csv': ''}, "entry 'data.csv' is not a .py file")
        self.refused({'my-mod.py': ''}, "'my-mod' is not a valid Python module name")
        self.refused({'a.py': '', 'zato/x.py': ''}, 'would shadow the SDK module zato')
        self.refused({'a.py': b'\xff'}, "'a.py' is not UTF-8")

    def test_limits(self):
        many = {'m%d.py' % i: '' for i in range(archive.PROJECT_MAX_FILES + 1)}
        self.refused(many, 'at most %d are accepted' % archive.PROJECT_MAX_FILES)
        big = {'a.py': 'x' * (archive.PROJECT_MAX_BYTES + 1)}
        self.refused(big, 'more than 8 MiB uncompressed')

    def test_wrapper_folder_and_junk_are_dropped(self):
        files = archive.project_files(make_zip({
            'proj/svc.py': 's', 'proj/pkg/__init__.py': '', 'proj/__pycache__/svc.cpython-311.pyc': 'x',
            '__MACOSX/proj/._svc.py': 'x'}), 'p.zip')
        self.assertEqual(sorted(files), ['pkg/__init__.py', 'svc.py'])
        # A top folder that is a package stays.
        files = archive.project_files(make_zip({'pkg/__init__.py': '', 'pkg/svc.py': ''}), 'p.zip')
        self.assertEqual(sorted(files), ['pkg/__init__.py', 'pkg/svc.py'])


class Tags(unittest.TestCase):
    def ok(self, tag, env=ENV):
        return archive.tag_ok(*tag.split('-'), env)

    def test_accepted(self):
        for tag in ['py3-none-any', 'py2-none-any', 'py311-none-any', 'cp311-none-any',
                    'cp311-cp311-manylinux_2_17_x86_64', 'cp311-cp311-manylinux2014_x86_64',
                    'cp311-cp311-manylinux1_x86_64', 'cp38-abi3-manylinux_2_28_x86_64',
                    'cp311-cp311-linux_x86_64', 'py3-none-manylinux_2_5_x86_64']:
            if tag.startswith('py2'):
                self.assertFalse(self.ok(tag), tag)
            else:
                self.assertTrue(self.ok(tag), tag)

    def test_refused(self):
        for tag in ['cp311-cp311-win_amd64', 'cp312-cp312-manylinux_2_17_x86_64',
                    'cp310-cp310-manylinux_2_17_x86_64', 'cp311-cp311-manylinux_2_17_aarch64',
                    'cp311-cp311-manylinux_2_39_x86_64', 'cp311-cp311-musllinux_1_1_x86_64',
                    'cp311-cp311-macosx_11_0_arm64', 'py312-none-any', 'cp312-abi3-manylinux_2_17_x86_64',
                    'pp310-pypy310_pp73-manylinux_2_17_x86_64']:
            self.assertFalse(self.ok(tag), tag)

    def test_a_refusal_names_the_tag(self):
        with self.assertRaises(archive.Refused) as e:
            archive.check_wheel_name('fake-1.0-cp311-cp311-win_amd64.whl', ENV)
        self.assertIn('tag cp311-cp311-win_amd64 is not for this node', str(e.exception))
        name, version, tags = archive.check_wheel_name(
            'charset_normalizer-3.5.3-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.whl', ENV)
        self.assertEqual((name, version, len(tags)), ('charset_normalizer', '3.5.3', 2))

    def test_wheels_unpack_purelib_and_refuse_unsafe_entries(self):
        wheel = make_zip({'demo/__init__.py': 'X = 1\n', 'demo-1.0.dist-info/WHEEL': 'Tag: py3-none-any\n',
                          'demo-1.0.data/purelib/extra.py': '', 'demo-1.0.data/scripts/run': ''})
        with tempfile.TemporaryDirectory() as d:
            info = archive.unpack_wheel(wheel, os.path.join(d, 'w'), 'demo-1.0-py3-none-any.whl', ENV)
            self.assertEqual(info['top_level'], ['demo', 'extra'])
            self.assertEqual(sorted(os.listdir(os.path.join(d, 'w'))), ['demo', 'demo-1.0.dist-info', 'extra.py'])
            bad = make_zip({'../../evil.py': '', 'demo-1.0.dist-info/WHEEL': ''})
            with self.assertRaises(archive.Refused) as e:
                archive.unpack_wheel(bad, os.path.join(d, 'x'), 'demo-1.0-py3-none-any.whl', ENV)
            self.assertIn("'../../evil.py'", str(e.exception))
            self.assertFalse(os.path.exists(os.path.join(d, 'x')))


class Units(unittest.TestCase):
    def validate(self, files, module='u'):
        zipped = base64.b64encode(make_zip(files)).decode()
        return worker.validate({'op': 'validate', 'module': module, 'file': module + '.zip', 'zip': zipped})

    def test_helpers_are_importable_and_not_services(self):
        reply = self.validate({
            'shop_svc.py': 'from zato.server.service import Service\nfrom shop_models import Item\n'
                           'from shop_pkg.util import twice\nclass GetItem(Service):\n'
                           '    def handle(self):\n        self.response.payload = twice(Item.n)\n',
            'shop_models.py': 'class Item:\n    n = 21\n',
            'shop_pkg/__init__.py': '', 'shop_pkg/util.py': 'def twice(x):\n    return 2 * x\n'})
        self.assertTrue(reply['ok'], reply)
        self.assertEqual([s['name'] for s in reply['services']], ['shop-svc.get-item'])
        project.remove('u')

    def test_every_problem_of_every_file_at_once(self):
        reply = self.validate({'a_svc.py': 'import no_such_module_here\n',
                               'b_help.py': 'def f(:\n', 'json.py': ''})
        self.assertFalse(reply['ok'])
        where = sorted((p['file'], p['line']) for p in reply['problems'])
        self.assertEqual(where, [('a_svc.py', 1), ('b_help.py', 1), ('json.py', None)])
        self.assertIn('upload its wheel with `ctl integrator packages add`',
                      next(p['message'] for p in reply['problems'] if p['file'] == 'a_svc.py'))


if __name__ == '__main__':
    unittest.main()
