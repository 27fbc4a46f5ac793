#!/usr/bin/env python3
"""The systemd units as `meson install` places them: `systemd-analyze verify` (syntax,
every directive known, the Exec= programs present and executable, the man pages of
Documentation= present) and `systemd-analyze security --offline=true` (the sandboxing
score), with a threshold per unit. Skips (77) only if systemd-analyze is missing or
too old for --offline (systemd < 250).

usage: test_systemd.py BUILDDIR
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from install_tree import InstallTree  # noqa: E402

# Exposure (0 = locked down, 10 = unprotected). sealmail-imapd starts as root (it
# binds < 1024 and reads the TLS key, then drops to run_user) and serves the
# network, so it keeps CAP_NET_BIND_SERVICE/SETUID/SETGID, AF_INET* and the host
# network; the keymgr daemon runs as its own user with no network and no capability.
THRESHOLD = {"sealmail-imapd.service": 2.5, "sealmail-keymgr.service": 1.0}
# Directives a change must not lose (the score alone could hide a swap).
MUST = {
    "sealmail-imapd.service": [
        "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
        "ProtectHome=yes", "ReadWritePaths=-/var/lib/sealmail",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service seccomp", "LimitCORE=0", "LimitMEMLOCK=64M",
        "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes",
        "MemoryDenyWriteExecute=yes"],
    "sealmail-keymgr.service": [
        "User=sealmail", "NoNewPrivileges=yes", "ProtectSystem=strict",
        "PrivateNetwork=yes", "CapabilityBoundingSet=", "LimitCORE=0",
        "SystemCallFilter=@system-service", "RestrictAddressFamilies=AF_UNIX"],
}


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    sa = shutil.which("systemd-analyze")
    if sa is None:
        print("SKIP: systemd-analyze not installed (package systemd)")
        return 77
    ver = subprocess.run([sa, "--version"], capture_output=True, text=True).stdout
    m = re.match(r"systemd (\d+)", ver)
    if not m or int(m.group(1)) < 250:
        print("SKIP: systemd-analyze %s has no 'security --offline' (needs >= 250)" %
              (m.group(1) if m else "?"))
        return 77
    tree = InstallTree(sys.argv[1])
    failed = 0
    try:
        work = tempfile.mkdtemp(dir=tree.destdir)
        for unit, limit in THRESHOLD.items():
            path = os.path.join(tree.unitdir, unit)
            if not os.path.exists(path):
                print("FAIL %s: not installed in %s" % (unit, tree.unitdir))
                failed += 1
                continue
            with open(path) as f:
                text = f.read()
            lines = set(x.strip() for x in text.splitlines())
            missing = [d for d in MUST[unit] if d not in lines]
            if "@" in re.sub(r"@[a-z-]+", "", text.split("[Service]")[1]) or \
                    re.search(r"@(bindir|sysconfdir|docdir)@", text):
                print("FAIL %s: unsubstituted placeholder" % unit)
                failed += 1
            # The units name the installed programs (PREFIX/bin); point those at the
            # destdir copies so that verify checks the programs `meson install` put
            # there, and let man(1) find the installed pages.
            check_copy = os.path.join(work, unit)
            with open(check_copy, "w") as f:
                f.write(text.replace(tree.bindir_installed + "/", tree.bindir + "/"))
            env = dict(os.environ, MANPATH=tree.mandir)
            v = subprocess.run([sa, "verify", check_copy], capture_output=True,
                               text=True, env=env, timeout=120)
            s = subprocess.run([sa, "security", "--offline=true", check_copy],
                               capture_output=True, text=True, timeout=120)
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", s.stdout)
            score = float(m.group(1)) if m else None
            ok = v.returncode == 0 and not v.stderr.strip() and score is not None and \
                score <= limit and not missing
            print("%s %s: verify %s, exposure %s (%s, threshold %.1f)%s" % (
                "ok  " if ok else "FAIL", unit,
                "clean" if v.returncode == 0 and not v.stderr.strip() else
                "rc %d: %s" % (v.returncode, v.stderr.strip()),
                score, m.group(2) if m else "?", limit,
                "; missing: %s" % ", ".join(missing) if missing else ""))
            if not ok:
                failed += 1
                if score is None:
                    print(s.stdout[-1500:], s.stderr[-1500:])
            # What still counts against the unit, for the reader of the log.
            for line in s.stdout.splitlines():
                if line.startswith("✗"):
                    print("     " + re.sub(r"\s{2,}", "  ", line.strip()))
    finally:
        tree.cleanup()
    print("%s" % ("FAILED" if failed else "all units pass"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
