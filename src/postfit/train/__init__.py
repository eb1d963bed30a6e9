"""Training stages: postfit's own pre-training (pretrain.py, on corpus.py's text), SFT (sft.py) and GRPO (rl.py),
through the transformers Trainer and TRL; common.py holds what they share (checkpoint resume, loss logs, devices).

May import config, verify (the GRPO reward), evaluation (RL's held-out curve), data, models, tasks and io.
"""
