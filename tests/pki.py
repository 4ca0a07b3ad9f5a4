"""A throw-away certificate authority for the TLS tests (made with the openssl command-line tool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        pytest.fail("the TLS tests need the openssl command-line tool")
    subprocess.run([exe, *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, name: str) -> None:
    """A CA ``<name>-ca``, a server certificate for 127.0.0.1 and a client certificate, all signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    ca = ["-subj", f"/CN={name} test CA", "-addext", "basicConstraints=critical,CA:TRUE"]
    ca += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    openssl("req", "-x509", *ec, *ca, "-keyout", f"{name}-ca.key", "-out", f"{name}-ca.crt", cwd=d)
    leaves = {"server": "subjectAltName=IP:127.0.0.1,DNS:localhost", "client": "extendedKeyUsage=clientAuth"}
    for leaf, ext in leaves.items():
        (d / f"{leaf}.ext").write_text(ext + "\n")
        key, csr = f"{name}-{leaf}.key", f"{name}-{leaf}.csr"
        openssl("req", *ec[:-2], "-keyout", key, "-out", csr, "-subj", f"/CN={leaf}", cwd=d)
        sign = ["-CA", f"{name}-ca.crt", "-CAkey", f"{name}-ca.key", "-CAcreateserial", "-days", "2"]
        out = ["-out", f"{name}-{leaf}.crt", "-extfile", f"{leaf}.ext"]
        openssl("x509", "-req", "-in", csr, *sign, *out, cwd=d)


# -- tests of the harness's own pieces ----------------------------------------------------------------------------
