"""Training stages: postfit's own pre-training (pretrain.py, on data/corpus.py's text), SFT (sft.py) and GRPO
(rl.py), through the transformers Trainer and TRL; common.py holds what they share (checkpoint resume, loss logs,
devices).

May import evaluation (RL's held-out curve), config, data, verify (the GRPO reward), models, layout, ui,
distributed and io.
"""
