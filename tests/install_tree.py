"""Shared by test_install.py and test_systemd.py: `meson install --destdir` of the
build directory into a temp dir, and where things landed."""

import json
import os
import subprocess
import tempfile


def meson_option(builddir, name):
    out = subprocess.run(["meson", "introspect", "--buildoptions", builddir],
                         capture_output=True, text=True, check=True).stdout
    for o in json.loads(out):
        if o["name"] == name:
            return o["value"]
    raise KeyError(name)


class InstallTree:
    def __init__(self, builddir):
        self.builddir = os.path.abspath(builddir)
        self.tmp = tempfile.TemporaryDirectory(prefix="sealmail-install-")
        self.destdir = self.tmp.name
        p = subprocess.run(["meson", "install", "-C", self.builddir, "--no-rebuild",
                            "--destdir", self.destdir], capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            raise AssertionError("meson install failed (%d): %s%s" % (
                p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        self.prefix = meson_option(self.builddir, "prefix")
        unitdir = meson_option(self.builddir, "systemdunitdir") or \
            os.path.join(self.prefix, "lib/systemd/system")

        def under(*parts):
            path = os.path.join(*parts)
            if not os.path.isabs(path):
                path = os.path.join(self.prefix, path)
            return self.destdir + path

        self.bindir = under(meson_option(self.builddir, "bindir"))
        self.mandir = under(meson_option(self.builddir, "mandir"))
        self.docdir = under(meson_option(self.builddir, "datadir"), "doc", "sealmail")
        self.unitdir = self.destdir + unitdir
        # The prefix's bin directory as the units name it (without destdir).
        self.bindir_installed = self.bindir[len(self.destdir):]

    def cleanup(self):
        self.tmp.cleanup()
