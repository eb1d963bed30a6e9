"""postfit: what does post-training really buy?

Post-train one architecture from pre-trained weights and from random initialisation, evaluate
both in and out of distribution, and report the comparison with confidence intervals.
"""

__version__ = "0.1.0"
