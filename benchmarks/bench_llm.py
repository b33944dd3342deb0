"""The course's Llama: inference speed of lrkit.llm against transformers on the same weights.

Two workloads, float32 on the CPU, each run in interleaved rounds (see ``_timing.py``):

- prompt processing: one forward pass over a batch of prompts (tokens per second);
- generation: greedy decoding of new tokens one at a time with the KV cache (tokens/s),
  lrkit's ``generate`` against ``LlamaForCausalLM.generate(do_sample=False, use_cache=True)``.

Both models load the checkpoint shipped in ``datasets/tiny-llama`` (or a tiny random model
with ``--quick``). Tokens per second come from the median time; the speed-up is
transformers' time over lrkit's in the same round, median [min-max] over the rounds
(> 1: lrkit is faster). Time it only when nothing else runs on the machine.
Run: ``make bench`` or ``.venv/bin/python benchmarks/bench_llm.py [--quick]``.
"""

from __future__ import annotations

import statistics
import tempfile
import warnings

import torch
from _models import tiny_random_llama
from _timing import bench_parser, interleaved_times, print_machine, print_table, ratio

from lrkit.llm import Llama, generate
from lrkit.llm.data import DATASETS, load_ids


def main() -> None:
    parser = bench_parser("lrkit.llm against transformers", "a tiny random model (smoke run)")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    warnings.simplefilter("ignore")
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        print("lrkit: transformers is not installed; nothing to compare against")
        return
    tmp = tempfile.mkdtemp()
    if args.quick:
        tiny_random_llama().save_pretrained(tmp)
        path, batch, prompt_len, new = tmp, 4, 64, 32
    else:
        path, batch, prompt_len, new = DATASETS / "tiny-llama", 8, 256, 128
    ours = Llama.from_pretrained(path).eval()
    theirs = LlamaForCausalLM.from_pretrained(path).eval()
    ids = load_ids("heldout")[: batch * prompt_len].long().reshape(batch, prompt_len)
    prompt = ids[:1]  # generation: one sequence

    rows = []
    with torch.inference_mode():
        t = interleaved_times(
            {"ours": lambda: ours(ids), "theirs": lambda: theirs(ids).logits}, rounds=rounds
        )
        n = ids.numel()
        rows.append(
            {
                "workload": f"prompt {batch}x{prompt_len}",
                "lrkit tok/s": n / statistics.median(t["ours"]),
                "transformers tok/s": n / statistics.median(t["theirs"]),
                "lrkit speedup": ratio(t["theirs"], t["ours"]),
            }
        )

        def ours_gen():
            return generate(ours, prompt[0], max_new_tokens=new, temperature=0)

        def theirs_gen():
            return theirs.generate(
                prompt,
                max_new_tokens=new,
                min_new_tokens=new,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )

        same = torch.equal(ours_gen()[prompt_len:], theirs_gen()[0, prompt_len:])
        t = interleaved_times({"ours": ours_gen, "theirs": theirs_gen}, rounds=rounds, warmup=0)
        rows.append(
            {
                "workload": f"generate {new} after {prompt_len}",
                "lrkit tok/s": new / statistics.median(t["ours"]),
                "transformers tok/s": new / statistics.median(t["theirs"]),
                "lrkit speedup": ratio(t["theirs"], t["ours"]),
            }
        )
    print_machine(args)
    print(
        f"model {path if not args.quick else 'tiny random'}, {ours.num_params:,} parameters; "
        f"greedy tokens identical: {same}; lrkit speedup: median [min-max] over {rounds} "
        f"interleaved rounds"
    )
    print_table(rows, ["workload", "lrkit tok/s", "transformers tok/s", "lrkit speedup"])


if __name__ == "__main__":
    main()
