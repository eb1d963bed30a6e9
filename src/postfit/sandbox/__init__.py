"""A local sandbox for untrusted, model-written Python: stacked isolation and verdicts the program cannot forge.

    from postfit.sandbox import run_program
    v = run_program(code, tests=humaneval_tests, timeout=5)
    v.status, v.detail, v.layers

See README ("Code sandbox") for the layers, the threat model and what it does not protect against.
"""

from postfit.sandbox.api import Item, run_batch, run_program
from postfit.sandbox.layers import Isolation
from postfit.sandbox.policy import allow_weak, check, missing_layers
from postfit.sandbox.probe import isolation
from postfit.sandbox.run import Limits
from postfit.sandbox.verdict import STATUSES, Verdict

__all__ = [
    "Isolation", "Item", "Limits", "STATUSES", "Verdict", "allow_weak", "check", "isolation", "missing_layers",
    "run_batch", "run_program",
]  # fmt: skip
