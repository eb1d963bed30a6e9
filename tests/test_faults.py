"""Faults lose nothing: half-written checkpoints, full disks, damaged run files, bad input, files others can read."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import TINY_STUDY, postfit
from postfit import io
from postfit.cli.app import app
from postfit.config import load_study
from postfit.data.hub import read_items
from postfit.errors import DiskFull, UserError
from postfit.io import atomic_dir, atomic_write_text, read_jsonl
from postfit.layout import damaged
from postfit.train.common import last_checkpoint


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


# ---- checkpoints an interruption left half-written -------------------------------------------------------------


def _checkpoint(root: Path, step: int, files: dict[str, str]) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_resume_skips_and_removes_half_written_checkpoints(tmp_path, caplog):
    """The case seen by a user: the newest checkpoint-N holds only config.json and generation_config.json (a kill
    during the Trainer's save); the resume takes the newest complete one and removes the broken ones."""
    whole = {"trainer_state.json": json.dumps({"global_step": 10}), "model.safetensors": "w", "optimizer.pt": "o"}
    good = _checkpoint(tmp_path, 10, whole)
    _checkpoint(tmp_path, 20, {"config.json": "{}", "generation_config.json": "{}"})
    _checkpoint(tmp_path, 30, {**whole, "trainer_state.json": '{"global_st'})  # killed while writing its state
    _checkpoint(tmp_path, 40, {"trainer_state.json": json.dumps({"global_step": 40})})  # weights lost
    (tmp_path / "checkpoint-x").mkdir()  # not a checkpoint: left alone
    with caplog.at_level("WARNING"):
        assert last_checkpoint(tmp_path) == str(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-x"]
    assert caplog.text.count("incomplete checkpoint") == 3
    assert last_checkpoint(tmp_path / "missing") is None


# ---- full disks -----------------------------------------------------------------------------------------------


class _FullFile:
    """A file object whose writes fail as on a full filesystem."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _fill_disk(monkeypatch) -> None:
    real = os.fdopen
    monkeypatch.setattr(io.os, "fdopen", lambda fd, *a, **k: _FullFile(real(fd, *a, **k)))


def test_a_full_disk_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    path.write_text("old\n")
    _fill_disk(monkeypatch)
    with pytest.raises(DiskFull) as e:
        atomic_write_text(path, "new\n")
    assert str(path) in str(e.value) and "no space left" in str(e.value)
    assert path.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["results.jsonl"]


@pytest.mark.slow
def test_report_on_a_full_disk_exits_1_naming_the_file(tiny_study, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(tiny_study[1], out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    _fill_disk(monkeypatch)
    code, output = cli("report", str(out))
    assert code == 1 and "no space left on the device writing" in output and str(out) in output, output
    assert "Traceback" not in output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before, "a file changed or appeared"


def _can_mount_tmpfs() -> bool:
    try:
        return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="no mount namespace here; the simulated full disk tests above run")
@pytest.mark.parametrize("size", ["1200k", "2600k"])
def test_a_study_on_a_full_filesystem_exits_1_and_resumes_with_space(tiny_study, tmp_path, size):
    """The tiny study on a small tmpfs (in a mount namespace of its own): exit 1 naming a path on it, no traceback,
    nothing half-written that a later run would take as finished; with space again it ends with the results of an
    uninterrupted run."""
    path, one = tiny_study
    mnt, keep = tmp_path / "mnt", tmp_path / "kept"
    mnt.mkdir()
    script = (f"mount -t tmpfs -o size={size} tmpfs {mnt} && {sys.executable} -m postfit run {path} --out {mnt}/s; "
              f"rc=$?; cp -a {mnt}/s {keep}; exit $rc")  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, env=env)
    text = " ".join(proc.stderr.split())
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "no space left on the device writing" in text and f"{mnt}/s" in text and "Traceback" not in text, text
    for results in keep.glob("runs/*/results.jsonl"):
        assert damaged(results.parent) == [], results
    assert not list(keep.rglob(".*.tmp")), "a temporary file outlived the failed write"
    postfit("run", str(path), "--out", str(keep))
    assert read_jsonl(keep / "results.jsonl") == read_jsonl(one / "results.jsonl")


# ---- damaged run files ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated samples", "edited results"])
def test_a_damaged_run_is_refused_by_report_and_redone_by_run(tiny_study, tmp_path, damage):
    path, one = tiny_study
    out = tmp_path / "copy"
    shutil.copytree(one, out)
    run = out / "runs" / "random-none-s0"
    if damage == "truncated samples":
        name, text = "samples.jsonl", (run / "samples.jsonl").read_text()
        (run / name).write_text(text[: len(text) // 2])
    else:
        name, rows = "results.jsonl", read_jsonl(run / "results.jsonl")
        rows[0]["mean"] = 1.0
        (run / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, output = cli("report", str(out))
    assert code == 2 and f"{run}: {name} changed since the run wrote it" in output, output
    kept = (out / "runs" / "pretrained-none-s0" / "results.jsonl").stat().st_mtime_ns
    proc = postfit("run", str(path), "--out", str(out))
    assert f"{name} changed since the run wrote it" in " ".join(proc.stdout.split())  # a warning in the run's log
    assert read_jsonl(run / "samples.jsonl") == read_jsonl(one / "runs" / run.name / "samples.jsonl")
    assert read_jsonl(out / "results.jsonl") == read_jsonl(one / "results.jsonl")
    assert (out / "runs" / "pretrained-none-s0" / "results.jsonl").stat().st_mtime_ns == kept, "an intact run redone"


@pytest.mark.slow
def test_a_trained_run_whose_weights_are_lost_trains_again(tiny_study, tmp_path):
    """train.json says "trained" but model/ has no weights (and the run is not finished): trained again, not
    loaded, and the results are the uninterrupted run's."""
    path, one = tiny_study
    out = tmp_path / "copy"
    shutil.copytree(one, out)
    run = out / "runs" / "random-sft+rl-s0"
    (run / "results.jsonl").unlink()
    for weights in (run / "model").glob("*.safetensors"):
        weights.unlink()
    proc = postfit("run", str(path), "--out", str(out))
    assert "train.json without weights in model/; training again" in " ".join(proc.stdout.split())
    assert read_jsonl(run / "samples.jsonl") == read_jsonl(one / "runs" / run.name / "samples.jsonl")


# ---- bad input at every door ----------------------------------------------------------------------------------

LEAVES = [(k, s) for k, v in TINY_STUDY.items() if isinstance(v, dict) for s in v]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _load(tmp_path: Path, text: str):
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        return path, load_study(path), None
    except UserError as e:
        return path, None, " ".join(str(e).split())


@SETTINGS
@given(where=st.sampled_from([None, *TINY_STUDY]), key=st.from_regex(r"[a-z_]{1,12}", fullmatch=True))
def test_an_unknown_key_anywhere_is_named_with_its_path(tmp_path, where, key):
    data = json.loads(json.dumps(TINY_STUDY))
    parent = data if where is None or not isinstance(data[where], dict) else data[where]
    if key in parent:
        return
    parent[key] = 1
    path, study, message = _load(tmp_path, yaml.safe_dump(data))
    assert study is None and str(path) in message, message
    assert (key if parent is data else f"{where}.{key}") in message, message


@SETTINGS
@given(leaf=st.sampled_from(LEAVES), value=VALUES)
def test_a_wrong_value_anywhere_is_an_error_naming_the_file_and_key(tmp_path, leaf, value):
    data = json.loads(json.dumps(TINY_STUDY))
    data[leaf[0]][leaf[1]] = value
    path, study, message = _load(tmp_path, yaml.safe_dump(data))
    if study is None:  # a value the schema accepts is fine; a refused one names the file and the block
        assert str(path) in message and leaf[0] in message, message


@SETTINGS
@given(at=st.integers(0, 2000), junk=st.text(alphabet=":{}[]-&*!|>'\"%@`\t\n ", min_size=1, max_size=4))
def test_broken_yaml_is_an_error_naming_the_file(tmp_path, at, junk):
    text = yaml.safe_dump(TINY_STUDY)
    at = at % len(text)
    path, study, message = _load(tmp_path, text[:at] + junk + text[at:])
    if study is None:
        assert str(path) in message, message


LINES = st.one_of(
    st.just('{"id": "a", "source": "s", "domain": "math", "prompt": "1+1?", "answer": "2", "split": "train"}'),
    st.dictionaries(st.sampled_from(["id", "source", "domain", "prompt", "answer", "split", "tests", "x"]),
                    st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=7).map(json.dumps),
    st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s),
    st.binary(max_size=12).filter(lambda b: b"\n" not in b).map(lambda b: b.decode("latin-1")),
)  # fmt: skip


@SETTINGS
@given(lines=st.lists(LINES, max_size=6), latin1=st.booleans())
def test_a_broken_data_file_names_its_line(tmp_path, lines, latin1):
    """Broken JSON, missing or mistyped fields, stray text, bytes that are not UTF-8: each is a UserError naming
    the file and the line (the first line that is not UTF-8, for encodings), never a traceback."""
    path = tmp_path / "items.jsonl"
    data = "\n".join(lines).encode("latin-1" if latin1 else "utf-8", errors="replace")
    path.write_bytes(data)
    try:
        items = read_items(path)
    except UserError as e:
        line = str(e).removeprefix(f"{path}:").split(":")[0]
        assert line.isdigit() and 1 <= int(line) <= max(1, len(lines)), str(e)
        raw = data.split(b"\n")
        first_bad = next((n for n, b in enumerate(raw, 1) if not _utf8(b)), None)
        if first_bad is not None:
            assert f"{path}:{first_bad}: not UTF-8" in str(e)
    else:
        assert len(items) == sum(1 for line in lines if line.strip())


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _real_data_study(tmp_path: Path, source: Path) -> Path:
    study = {**{k: TINY_STUDY[k] for k in ("model", "pretrain", "sft", "eval", "report")}, "name": "bad-data",
             "data": {"sft": {"source": str(source)}}, "tasks": TINY_STUDY["tasks"],
             "grid": {"inits": ["pretrained"], "recipes": ["sft"], "seeds": [0]}}  # fmt: skip
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "data.sft.source: '{path}' gave no items"),
        (b'{"id": "a", "source": "s", "domain": "math", "prompt": "p", "answer": "1", "split": "train"}\n{"id": ',
         "{path}:2: not valid JSON"),
        (b'{"id": "a", "source": "s", "domain": "math", "prompt": "p\xe9", "answer": "1", "split": "train"}\n',
         "{path}:1: not UTF-8 text"),
        (b'{"id": "a", "source": "s", "domain": "math", "prompt": "p", "split": "train"}\n',
         "math items need a reference answer"),
    ],
)  # fmt: skip
def test_bad_data_is_refused_before_any_work(tmp_path, content, expected):
    """A study whose data.sft.source is empty or broken exits 2 before pre-training, and writes nothing."""
    source = tmp_path / "items.jsonl"
    source.write_bytes(content)
    out = tmp_path / "out"
    code, output = cli("run", str(_real_data_study(tmp_path, source)), "--out", str(out))
    assert code == 2 and expected.format(path=source) in output, output
    assert not out.exists(), "files were written before the data was checked"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["eval", "x", "--bench", "rg:chain_sum", "--limit", "0", "--out", "{tmp}/e"], "--limit"),
        (["eval", "x", "--bench", "rg:chain_sum", "--limit", "many", "--out", "{tmp}/e"], "--limit"),
        (["report", "{tmp}/missing"], "not a study output directory"),
        (["status", "{tmp}/missing"], "{tmp}/missing"),
        (["run", "smoke", "--shard", "2/2", "--out", "{tmp}/e"], "--shard: expected 0 <= I < N"),
        (["plan", "{tmp}/missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_arguments_exit_2_naming_them(tmp_path, args, expected):
    code, output = cli(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and expected.format(tmp=tmp_path) in output, output
    assert not (tmp_path / "e").exists()


# ---- files others can read ------------------------------------------------------------------------------------


def test_model_directories_get_the_usual_permissions(tmp_path, monkeypatch):
    """mkdtemp makes 0700 and libraries may write 0600: with umask 022 a finished directory is 0755, files 0644."""
    monkeypatch.setattr(io, "_UMASK", 0o022)
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "model.safetensors").write_bytes(b"w")
        os.chmod(tmp / "model.safetensors", 0o600)
        (tmp / "sub").mkdir(mode=0o700)
        (tmp / "sub" / "f.json").write_text("{}")
    modes = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "model", *(tmp_path / "model").rglob("*")]}
    assert modes == {"model": 0o755, "model.safetensors": 0o644, "sub": 0o755, "f.json": 0o644}
    atomic_write_text(tmp_path / "r.json", "{}")
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
