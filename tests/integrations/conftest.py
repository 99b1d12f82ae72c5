"""Integration fixtures: the auth tests' loopback OIDC provider (a Logto-like issuer), shared
rather than copied, and the webhook receiver."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "aico_tests_auth_conftest", Path(__file__).resolve().parents[1] / "auth" / "conftest.py")
assert _spec is not None and _spec.loader is not None
_auth = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _auth  # dataclasses look their module up while the file runs
_spec.loader.exec_module(_auth)

oidc_provider = _auth.oidc_provider
oidc_api = _auth.oidc_api
make_idp_org = _auth.make_idp_org
