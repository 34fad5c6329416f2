"""Pack what benchmarks/gpu_check.py needs on a GPU machine into one gitignored folder (default gpu_pack/).

Usage: python benchmarks/gpu_pack.py [--out gpu_pack] [--whisper DIR] [--ravdess DIR] [--jobs N] [--no-wheels]

A lent GPU machine receives only the repository's working tree (at most 64 MiB; ../shared stays behind) and
reaches no package registry. This writes, incrementally (files already packed are kept):

    OUT/whisper-base-encoder/   config.json, preprocessor_config.json, LICENSE and the weights as 16-bit
                                safetensors: copied as they are when every tensor is already float16/bfloat16
                                (../shared's is float16, 41 MB), else cast to float16. serkit's Whisper upstream
                                loads them as float32 (WhisperEncoder.from_pretrained(dtype=float32)).
    OUT/ravdess/Actor_XX/*.ogg  every RAVDESS speech file, 16 kHz mono, as Ogg/Opus written by soundfile
                                (libsndfile's default Opus bitrate, ~18 kbit/s for 16 kHz mono speech), under
                                its own name: gpu_check.py decodes them back to WAV in a temporary folder, where
                                serkit's RAVDESS loader reads them unchanged (names carry emotion and actor).
    OUT/wheels/*.whl            CPython 3.12 manylinux x86_64 wheels of serkit's runtime dependencies that the
                                GPU image lacks (WHEELS), at the versions installed here; `pip download`.
    OUT/pack.json               what was packed, from where, and the sizes

and prints the sizes beside the working tree's (tracked + untracked-not-ignored files) and the 64 MiB limit;
exits 1 when they do not fit. The folder goes to the machine by naming it in the run tool's `carry`
(docs/benchmarks.md, "GPU check").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
LIMIT_BYTES = 64 * 1024 * 1024  # what may travel to the GPU machine: working tree + carried folders
SAMPLE_RATE = 16000
WHISPER_FILES = ("config.json", "preprocessor_config.json", "LICENSE", "README.md")
RAVDESS_SUFFIXES = (".wav", ".flac")
# serkit's runtime dependencies (pyproject.toml) that the GPU image lacks (it has torch, transformers,
# lightning, numpy, scipy, scikit-learn, matplotlib, safetensors, pyyaml, tqdm), plus what they need there:
# soundfile needs cffi (which needs pycparser); omegaconf >= 2.4 vendors its antlr4 runtime.
WHEELS = ("soundfile", "cffi", "pycparser", "soxr", "omegaconf")
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64")
PYTHON_VERSION = "3.12"  # the GPU image's python3


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "gpu_pack", help="the pack folder (gitignored)")
    p.add_argument("--whisper", type=Path, default=SHARED / "models" / "whisper-base-encoder",
                   help="Whisper encoder folder (Hugging Face layout)")
    p.add_argument("--ravdess", type=Path, default=SHARED / "data" / "ravdess",
                   help="RAVDESS folder in its official layout (Actor_XX/03-01-*.wav|flac)")
    p.add_argument("--jobs", type=int, default=1, help="processes encoding Opus")
    p.add_argument("--no-wheels", action="store_true", help="leave the wheels out (no network needed)")
    p.add_argument("--limit-mib", type=float, default=LIMIT_BYTES / 2**20,
                   help="the size the working tree and the pack must fit in together")
    args = p.parse_args(argv)

    import soundfile as sf

    if "OPUS" not in sf.available_subtypes("OGG"):
        sys.exit(f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}) cannot write Ogg/Opus; "
                 "soundfile >= 0.12's wheels bundle a libsndfile that can")
    for folder, what in ((args.whisper, "--whisper"), (args.ravdess, "--ravdess")):
        if not folder.is_dir():
            sys.exit(f"{what} {folder}: not a folder")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    whisper = pack_whisper(args.whisper, out / "whisper-base-encoder")
    print(f"whisper: {whisper['bytes'] / 2**20:.1f} MiB ({whisper['weights']})", flush=True)
    ravdess = pack_ravdess(args.ravdess, out / "ravdess", jobs=args.jobs)
    print(f"ravdess: {ravdess['files']} files, {ravdess['bytes'] / 2**20:.1f} MiB "
          f"({ravdess['kbit_per_s']:.1f} kbit/s over {ravdess['seconds'] / 3600:.2f} h)", flush=True)
    wheels = None if args.no_wheels else pack_wheels(out / "wheels")
    if wheels is not None:
        print(f"wheels: {len(wheels['files'])} files, {wheels['bytes'] / 2**20:.1f} MiB", flush=True)

    pack_bytes = folder_bytes(out)
    tree_bytes = working_tree_bytes(REPO)
    limit = args.limit_mib * 2**20
    facts = {"whisper": whisper, "ravdess": ravdess, "wheels": wheels, "pack_bytes": pack_bytes,
             "working_tree_bytes": tree_bytes, "limit_bytes": int(limit)}
    (out / "pack.json").write_text(json.dumps(facts, indent=2) + "\n", encoding="utf-8")
    pack_bytes = folder_bytes(out)  # pack.json included
    total = pack_bytes + (tree_bytes or 0)
    print(f"pack {out}: {pack_bytes / 2**20:.1f} MiB; working tree "
          f"{'unknown (not a git checkout)' if tree_bytes is None else f'{tree_bytes / 2**20:.1f} MiB'}; "
          f"together {total / 2**20:.1f} MiB of {limit / 2**20:.0f} MiB", flush=True)
    if total > limit:
        print(f"too big: {total / 2**20:.1f} MiB > {limit / 2**20:.0f} MiB", file=sys.stderr)
        return 1
    return 0


# -- the Whisper encoder ---------------------------------------------------------------------------------


def pack_whisper(source: Path, target: Path) -> dict:
    """Copy the encoder's config files and its weights as 16-bit safetensors into `target`."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    weights = source / "model.safetensors"
    if not weights.is_file():
        sys.exit(f"{weights}: not found (expected the encoder's weights as one safetensors file)")
    target.mkdir(parents=True, exist_ok=True)
    for name in WHISPER_FILES:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    if not (target / "config.json").is_file():
        sys.exit(f"{source}: no config.json")
    with safe_open(str(weights), framework="pt") as f:
        metadata_ = f.metadata() or {}
        dtypes = {str(f.get_slice(key).get_dtype()) for key in f.keys()}
    if dtypes <= {"F16", "BF16"}:
        shutil.copyfile(weights, target / "model.safetensors")
        how = f"copied as stored ({', '.join(sorted(dtypes))})"
    else:
        import torch

        with safe_open(str(weights), framework="pt") as f:
            state = {key: _half(f.get_tensor(key), torch) for key in f.keys()}
        save_file(state, str(target / "model.safetensors"), metadata={**metadata_, "format": "pt"})
        how = f"cast to float16 from {', '.join(sorted(dtypes))}"
    return {"source": str(source), "weights": how, "bytes": folder_bytes(target)}


def _half(tensor, torch):
    return tensor.to(torch.float16) if tensor.is_floating_point() and tensor.dtype != torch.bfloat16 else tensor


# -- RAVDESS as Ogg/Opus ---------------------------------------------------------------------------------


def pack_ravdess(source: Path, target: Path, jobs: int = 1) -> dict:
    """Every RAVDESS audio file under source/Actor_XX as target/Actor_XX/<same stem>.ogg (Opus, 16 kHz mono)."""
    files = sorted(path for folder in sorted(source.glob("Actor_*")) if folder.is_dir()
                   for path in folder.iterdir() if path.suffix.lower() in RAVDESS_SUFFIXES)
    if not files:
        sys.exit(f"{source}: no RAVDESS audio (Actor_XX/*.wav|flac) found")
    target.mkdir(parents=True, exist_ok=True)
    for name in ("README.md", "LICENSE"):  # the corpus's licence note travels with it
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
    jobs_list = [(path, target / path.parent.name / (path.stem + ".ogg")) for path in files]
    todo = [job for job in jobs_list if not job[1].is_file()]
    if todo:
        print(f"ravdess: encoding {len(todo)} of {len(files)} files as Ogg/Opus ({jobs} process(es))", flush=True)
    if jobs > 1 and len(todo) > 1:
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_encode_job, todo, chunksize=16))
    else:
        for job in todo:
            _encode_job(job)
    import soundfile as sf

    seconds = sum(sf.info(str(ogg)).duration for _, ogg in jobs_list)
    size = sum(ogg.stat().st_size for _, ogg in jobs_list)
    return {"source": str(source), "files": len(files), "seconds": round(seconds, 1), "bytes": size,
            "kbit_per_s": 8 * size / max(seconds, 1e-9) / 1000, "format": "OGG/OPUS, 16 kHz mono"}


def _encode_job(job: tuple[Path, Path]) -> None:
    encode_opus(*job)


def encode_opus(source: Path, target: Path) -> int:
    """Decode `source` to 16 kHz mono (serkit's loader: any format soundfile reads, resampled by soxr) and
    write it to `target` as Ogg/Opus, atomically (temp file, then rename). -> the number of samples written."""
    import soundfile as sf

    from serkit.data.audio import load_audio

    wav = load_audio(source, target_sr=SAMPLE_RATE)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        sf.write(str(temp), wav, SAMPLE_RATE, format="OGG", subtype="OPUS")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return len(wav)


# -- wheels ----------------------------------------------------------------------------------------------


def pack_wheels(target: Path) -> dict:
    """pip download the WHEELS for CPython 3.12 manylinux x86_64 at the versions installed here."""
    target.mkdir(parents=True, exist_ok=True)
    versions = {_canonical(name): metadata.version(name) for name in WHEELS}
    for wheel in target.glob("*.whl"):  # another version left by an earlier pack: two would stop the install
        name, version = wheel.name.split("-")[:2]
        if _canonical(name) in versions and version != versions[_canonical(name)]:
            wheel.unlink()
    pins = [f"{name}=={metadata.version(name)}" for name in WHEELS]
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON_VERSION, "--implementation", "cp",
               *(arg for platform in PIP_PLATFORMS for arg in ("--platform", platform)), "-d", str(target), *pins]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"pip download failed ({' '.join(pins)}):\n{done.stderr.strip()[-2000:]}")
    files = sorted(target.glob("*.whl"))
    return {"pins": pins, "files": [w.name for w in files], "bytes": sum(w.stat().st_size for w in files)}


def _canonical(name: str) -> str:
    """A project name as wheel file names spell it, lower case: 'kaldi-native-fbank' -> 'kaldi_native_fbank'."""
    return name.lower().replace("-", "_").replace(".", "_")


# -- sizes -----------------------------------------------------------------------------------------------


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def working_tree_bytes(repo: Path) -> int | None:
    """Bytes of the tracked and the untracked-not-ignored files (what travels besides carried folders);
    None outside a git checkout."""
    try:
        listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others",
                                 "--exclude-standard"], capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = {repo / name for name in listed.decode().split("\0") if name}
    return sum(path.stat().st_size for path in paths if path.is_file())


if __name__ == "__main__":
    sys.exit(main())
