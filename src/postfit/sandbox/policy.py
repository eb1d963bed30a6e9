"""Fail closed: model-written code runs only when the layers that contain it were verified, or the user opted in.

The required layers are those that stop what rlimits and a uid drop cannot: network access (`netns`), processes
that detach and outlive the verdict or signal processes outside (`pidns`), and reads of the host's filesystem
(`mountns`). Today bubblewrap's namespaces give all three. Without them every code verdict is `error` (an
infrastructure failure: neither a pass nor the model's fault), unless the process opted in with
`allow_weak(True)` (`--unsafe-weak-sandbox`, `sandbox.allow_weak: true`); then verdicts carry `weak: true`.
"""

from __future__ import annotations

from postfit.errors import UserError
from postfit.sandbox.layers import Isolation
from postfit.sandbox.probe import isolation

REQUIRED = {
    "netns": "network access",
    "pidns": "detached processes and signals to processes outside",
    "mountns": "reads of the host's filesystem",
}
FIX = (
    "Install bubblewrap (`apt-get install bubblewrap`); where it is installed but fails, the kernel blocks "
    "unprivileged user namespaces: `sysctl kernel.unprivileged_userns_clone=1` (Debian) or "
    "`sysctl kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04+)."
)
OPT_IN = "`--unsafe-weak-sandbox` (or `sandbox.allow_weak: true` in a study file)"

_weak_allowed = False


def allow_weak(on: bool = True) -> None:
    """Let this process run code under the weaker layers (every verdict then says `weak: true`)."""
    global _weak_allowed
    _weak_allowed = on


def weak_allowed() -> bool:
    return _weak_allowed


def missing_layers(iso: Isolation | None = None) -> list[str]:
    """The required layers this machine's sandbox lacks (verified by the start-up probe)."""
    layers = (iso or isolation()).layers
    return [name for name in REQUIRED if name not in layers]


def refusal(missing: list[str], iso: Isolation | None = None) -> str:
    """Why code will not run here, and how to fix it."""
    what = "; ".join(f"{name} ({REQUIRED[name]})" for name in missing)
    why = " ".join((iso or isolation()).problems)
    return (f"the code sandbox lacks required layers: {what}.{' ' + why if why else ''} {FIX} To run anyway with "
            f"weaker isolation (untrusted code may then reach the network, host files and other processes): "
            f"{OPT_IN}.")  # fmt: skip


def check(what: str) -> dict:
    """Before work that will run model-written code: the sandbox's state as stored next to results
    ({"weak": bool, "missing": [...], "layers": [...]}); UserError naming `what`, the missing layers and the fix
    when they are missing and the user did not opt in."""
    iso = isolation()
    missing = missing_layers(iso)
    if missing and not _weak_allowed:
        raise UserError(f"{what} runs model-written code, and {refusal(missing, iso)}")
    return {"weak": bool(missing), "missing": missing, "layers": list(iso.layers)}
