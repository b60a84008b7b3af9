"""Sentence splitting and morpheme analysis of one very long line: whole vs in windows.

Kiwi's time on one input grows faster than its length, inside one C call that Ctrl-C cannot
interrupt; `rag.korean` analyzes long lines in windows of `WINDOW_CHARS`. For each shape and
length this prints the time of Kiwi on the whole line (skipped above ``--whole-max``, where it
takes minutes) and of `sentence_spans` + `morphemes_batch` in windows, and the longest single
Kiwi call (how long Ctrl-C may wait).

    python benchmarks/bench_long_lines.py
    python benchmarks/bench_long_lines.py --lengths 20000,80000,320000 --whole-max 80000

The machine may be busy: the 1-minute load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from rag import korean

SHAPES = {
    # News sentences run together on one line (a scraped page that lost its line breaks).
    "news": (
        "카카오엔터프라이즈가 클라우드 사업에 집중한다. 인공지능 사업은 카카오브레인이 "
        "맡는다고 밝혔다. 이경진 신임 대표는 수익 구조가 좋지 않았기 때문이라고 말했다. "
    ),
    # One syllable repeated with no space or punctuation: the slowest shape found for Kiwi.
    "가…": "가",
}


class Timed:
    """Kiwi with the longest single call timed."""

    def __init__(self) -> None:
        self.real = korean.kiwi()
        self.longest = 0.0

    def _time(self, method: str, arg: Any) -> Any:
        started = time.perf_counter()
        result = getattr(self.real, method)(arg)
        if isinstance(arg, list):  # a batch is consumed lazily, one text per step
            out = []
            for item in result:
                out.append(item)
                self.longest = max(self.longest, time.perf_counter() - started)
                started = time.perf_counter()
            return out
        self.longest = max(self.longest, time.perf_counter() - started)
        return result

    def split_into_sents(self, text: str) -> Any:
        return self._time("split_into_sents", text)

    def tokenize(self, text: Any) -> Any:
        return self._time("tokenize", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="20000,40000,80000,160000")
    parser.add_argument("--whole-max", type=int, default=80_000)
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    real = korean.kiwi()
    real.tokenize("워밍업")
    print(f"load average {os.getloadavg()[0]:.2f}; window {korean.WINDOW_CHARS} characters")
    print("| line | characters | Kiwi on the whole line | in windows | longest call |")
    print("|---|---|---|---|---|")
    for name, unit in SHAPES.items():
        for n in lengths:
            line = (unit * (n // len(unit) + 1))[:n]
            whole = "—"
            if n <= args.whole_max:
                started = time.perf_counter()
                real.split_into_sents(line)
                real.tokenize(line)
                whole = f"{time.perf_counter() - started:.1f} s"
            timed = Timed()
            korean.kiwi = lambda timed=timed: timed  # type: ignore[assignment]
            try:
                started = time.perf_counter()
                korean.sentence_spans(line)
                korean.morphemes_batch([line])
                windowed = time.perf_counter() - started
            finally:
                korean.kiwi = lambda: real  # type: ignore[assignment]
            print(f"| {name} | {n:,} | {whole} | {windowed:.1f} s | {timed.longest:.2f} s |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
