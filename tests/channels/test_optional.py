"""Channels is an optional dependency: the core never imports it."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_importing_the_package_does_not_import_channels() -> None:
    code = (
        "import sys, omnitenant_async, omnitenant_async.context, omnitenant_async.exceptions\n"
        "assert not [m for m in sys.modules if m == 'channels' or m.startswith('channels.')]\n"
        "import omnitenant_async.channels\n"
        "assert 'channels.layers' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
