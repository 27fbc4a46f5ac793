#!/usr/bin/env python3
"""`meson install --destdir` into a temp dir places the three programs, the systemd
units, the man pages and the documentation with the annotated example config; each
man page renders with `man -l` without a warning; the example config and
sealmail.conf(5) name every key the programs know (the keys of the commented config
`sealmail-vault init` writes), and the example passes `sealmail-imapd
--check-config` once its paths point at real files.

usage: test_install.py BUILDDIR
"""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from install_tree import InstallTree  # noqa: E402

PROGRAMS = ["sealmail-imapd", "sealmail-vault", "sealmail-keymgr"]
UNITS = ["sealmail-imapd.service", "sealmail-keymgr.service"]
MAN = {"man8": ["sealmail-imapd.8", "sealmail-vault.8", "sealmail-keymgr.8"],
       "man5": ["sealmail.conf.5"]}
DOCS = ["sealmail.conf.example", "admin-guide.md", "postfix.md", "SECURITY.md",
        "README.md", "KEYS.md"]

failures = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)


def known_keys(tree, tmp):
    """Every key, from the commented default config `vault init` writes."""
    subprocess.run([os.path.join(tree.bindir, "sealmail-vault"), "init",
                    os.path.join(tmp, "v")], capture_output=True, check=True, timeout=60)
    keys = []
    with open(os.path.join(tmp, "v", "sealmail.conf")) as f:
        for line in f:
            m = re.match(r"^#?([a-z_0-9]+) = ", line)
            if m:
                keys.append(m.group(1))
    return keys


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    tree = InstallTree(sys.argv[1])
    try:
        for p in PROGRAMS:
            path = os.path.join(tree.bindir, p)
            ok = os.path.isfile(path) and os.access(path, os.X_OK)
            if ok:
                r = subprocess.run([path, "--help"], capture_output=True, timeout=30)
                ok = b"sealmail" in r.stdout + r.stderr
            check(ok, "program %s installed and runs" % path[len(tree.destdir):])
        for u in UNITS:
            path = os.path.join(tree.unitdir, u)
            ok = os.path.isfile(path)
            if ok:
                with open(path) as f:
                    text = f.read()
                ok = ("%s/%s " % (tree.bindir_installed, u.split(".")[0])) in text
            check(ok, "unit %s installed, ExecStart names the installed program" %
                  path[len(tree.destdir):])
        man = shutil.which("man")
        for sect, pages in MAN.items():
            for page in pages:
                path = os.path.join(tree.mandir, sect, page)
                if not os.path.isfile(path):
                    check(False, "man page %s installed (scdoc missing at build time?)"
                          % path[len(tree.destdir):])
                    continue
                if man is None:
                    check(False, "man(1) to render %s (package man-db)" % page)
                    continue
                env = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", MAN_KEEP_STDERR="1")
                r = subprocess.run([man, "--warnings", "-l", path], capture_output=True,
                                   text=True, env=env, timeout=60)
                name = page.rsplit(".", 1)[0]
                ok = r.returncode == 0 and not r.stderr.strip() and "NAME" in r.stdout \
                    and name in r.stdout and len(r.stdout.splitlines()) > 20
                check(ok, "man -l %s renders without warnings (%d lines)%s" % (
                    page, len(r.stdout.splitlines()),
                    "" if ok else ": rc %d %s" % (r.returncode, r.stderr.strip()[:500])))
        for d in DOCS:
            path = os.path.join(tree.docdir, d)
            check(os.path.isfile(path) and os.path.getsize(path) > 500,
                  "doc %s installed" % path[len(tree.destdir):])

        tmp = tempfile.mkdtemp(dir=tree.destdir)
        keys = known_keys(tree, tmp)
        check(len(keys) > 20, "%d config keys known" % len(keys))
        with open(os.path.join(tree.docdir, "sealmail.conf.example")) as f:
            example = f.read()
        with open(os.path.join(tree.mandir, "man5", "sealmail.conf.5")) as f:
            page = f.read()
        active = set(re.findall(r"^([a-z_0-9]+) = ", example, re.M))
        check(not set(keys) - active, "example sets every key (missing: %s)" %
              sorted(set(keys) - active))
        check(not active - set(keys), "example has no unknown key (%s)" %
              sorted(active - set(keys)))
        undocumented = [k for k in keys if not re.search(r"\\fB%s\\fR" %
                                                         k.replace("_", r"_"), page)]
        check(not undocumented, "sealmail.conf(5) documents every key (missing: %s)" %
              undocumented)

        # The example, with its paths pointed at real files, passes --check-config.
        v = os.path.join(tmp, "v")
        conf = os.path.join(tmp, "example.conf")
        run_user = "sealmail"
        try:
            pwd.getpwnam(run_user)
        except KeyError:
            run_user = "nobody"
        sub = {"data_dir": v, "tls_cert": os.path.join(v, "tls", "cert.pem"),
               "tls_key": os.path.join(v, "tls", "key.pem"),
               "lmtp_listen": os.path.join(tmp, "lmtp.sock"),
               "audit_log": os.path.join(tmp, "audit.log"), "run_user": run_user}
        text = example
        for k, val in sub.items():
            text = re.sub(r"^%s = .*$" % k, "%s = %s" % (k, val), text, flags=re.M)
        with open(conf, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(tree.bindir, "sealmail-imapd"), "-c", conf,
                            "--check-config"], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, "example config passes --check-config%s" % (
            "" if r.returncode == 0 else ": " + r.stderr.strip()))
    finally:
        tree.cleanup()
    print("FAILED: %d" % len(failures) if failures else "all install checks pass")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
