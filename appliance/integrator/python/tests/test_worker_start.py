"""What a worker imports when it starts: the modules only some services
need (mail, outgoing HTTP, commands) wait for their first use, which
keeps a worker's start and memory down (docs/integrator.md)."""

import os
import subprocess
import sys
import unittest

LATER = ('smtplib', 'email.message', 'urllib.request', 'http.client', 'ssl', 'subprocess')


class WorkerStart(unittest.TestCase):
    def test_a_starting_worker_leaves_mail_http_and_commands_unimported(self):
        probe = ('import sys; import alpharen.worker; '
                 'print(" ".join(m for m in %r if m in sys.modules))' % (LATER,))
        out = subprocess.run([sys.executable, '-S', '-c', probe], capture_output=True, text=True,
                             env={'PYTHONPATH': os.environ['PYTHONPATH']}, check=True)
        self.assertEqual(out.stdout.strip(), '', 'imported at start: ' + out.stdout)

    def test_they_load_on_first_use(self):
        probe = ('import sys; from alpharen import mail, commands; '
                 'from alpharen.outgoing import RESTConnection; '
                 'mail._addresses("a@b.c"); '
                 'print(" ".join(m for m in ("email.utils",) if m in sys.modules))')
        out = subprocess.run([sys.executable, '-S', '-c', probe], capture_output=True, text=True,
                             env={'PYTHONPATH': os.environ['PYTHONPATH']}, check=True)
        self.assertEqual(out.stdout.strip(), 'email.utils')


if __name__ == '__main__':
    unittest.main()
