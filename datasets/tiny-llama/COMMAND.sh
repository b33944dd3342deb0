#!/usr/bin/env bash
# The exact command that trains the shipped model (it resumes from checkpoint.pt if present).
# Run from the repository root.
OMP_WAIT_POLICY=PASSIVE .venv/bin/python -m lrkit.llm.train --out datasets/tiny-llama \
    --hidden 256 --layers 6 --heads 8 --kv-heads 4 --intermediate 688 --context 512 \
    --batch 16 --steps 1500 --lr 3e-3 --min-lr 3e-4 --warmup 200 --seed 0 \
    --eval-every 250 --ckpt-every 50 "$@"
