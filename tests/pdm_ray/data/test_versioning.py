"""Data versions with the real ``dvc`` in temporary git repositories, and the repo's own pipeline."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from pdm_ray.data.versioning import content_hash, data_version, dvc_md5
from pdm_ray.errors import DataError

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample"
BIN = ROOT / ".venv" / "bin"
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "DVC_NO_ANALYTICS": "1",
    "JAX_PLATFORMS": "cpu",
}


def run(*cmd: str, cwd: Path) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def copy_channel(dest: Path, chan_id: str = "A-5") -> Path:
    for split in ("train", "test"):
        (dest / split).mkdir(parents=True)
        shutil.copy(SAMPLE / split / f"{chan_id}.npy", dest / split)
    shutil.copy(SAMPLE / "labeled_anomalies.csv", dest)
    return dest


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A git + DVC repository holding one sample channel under data/, tracked by ``dvc add``."""
    repo = tmp_path_factory.mktemp("dvc_repo")
    run("git", "init", "-q", cwd=repo)
    copy_channel(repo / "data")
    run(str(BIN / "dvc"), "init", "-q", cwd=repo)
    run(str(BIN / "dvc"), "add", "-q", "data", cwd=repo)
    yield repo


def test_content_hash_is_deterministic_and_sees_names_and_bytes(tmp_path: Path) -> None:
    a = copy_channel(tmp_path / "a")
    b = copy_channel(tmp_path / "b")
    digest, n_files, size = content_hash(a)
    assert (digest, n_files, size) == content_hash(b)  # same files anywhere: same hash
    assert n_files == 3 and size == sum(p.stat().st_size for p in a.rglob("*") if p.is_file())
    (b / "test" / "A-5.npy").rename(b / "test" / "A-6.npy")
    assert content_hash(b)[0] != digest
    np.save(a / "train" / "A-5.npy", np.zeros((3, 25)))
    assert content_hash(a)[0] != digest


def test_untracked_data_gets_a_content_hash(tmp_path: Path) -> None:
    data = copy_channel(tmp_path / "data")
    version = data_version(data)
    assert version.source == "content-hash" and version.tracked_by is None
    assert version.digest == content_hash(data)[0] and len(version.digest) == 64
    assert version.as_tags() == {
        "data.path": str(data.resolve()),
        "data.version": version.digest,
        "data.version_source": "content-hash",
    }


def test_missing_or_empty_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        data_version(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no files"):
        data_version(tmp_path / "empty")


def test_a_malformed_dvc_file_is_a_data_error(tmp_path: Path) -> None:
    data = copy_channel(tmp_path / "data")
    (tmp_path / ".dvc").mkdir()  # a DVC repository's root, as `dvc init` leaves it
    dvc_file = data.with_name(data.name + ".dvc")
    dvc_file.write_text("outs: [d]\n")
    with pytest.raises(DataError, match="'outs' must be a list of mappings"):
        data_version(data)
    dvc_file.unlink()
    (tmp_path / "dvc.lock").write_text("stages: [x]\n")
    with pytest.raises(DataError, match="no 'stages' mapping"):
        data_version(data)


@pytest.mark.slow
def test_dvc_added_directory_reports_the_dvc_md5(dvc_repo: Path) -> None:
    recorded = yaml.safe_load((dvc_repo / "data.dvc").read_text())["outs"][0]
    version = data_version(dvc_repo / "data")
    assert version.source == "dvc" and version.tracked_by == "data.dvc"
    assert version.digest == recorded["md5"] == dvc_md5(dvc_repo / "data")
    assert version.n_files == recorded["nfiles"] == 3 and version.size == recorded["size"]
    assert version.as_tags()["data.tracked_by"] == "data.dvc"


@pytest.mark.slow
def test_changed_data_falls_back_to_its_content_hash(dvc_repo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(dvc_repo, copy)
    np.save(copy / "data" / "train" / "A-5.npy", np.ones((10, 25)))
    version = data_version(copy / "data")
    assert version.source == "content-hash"
    assert version.digest == content_hash(copy / "data")[0]


@pytest.mark.slow
def test_tiny_pipeline_repro_records_outputs_in_dvc_lock(dvc_repo: Path) -> None:
    (dvc_repo / "params.yaml").write_text("windows:\n  l_s: 20\n  n_predictions: 2\n")
    stage = {
        "cmd": "pdm-ray data prepare data --config params.yaml --out prepared",
        "deps": ["data"],
        "params": ["windows"],
        "outs": ["prepared"],
    }
    (dvc_repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"prepare": stage}}))
    run(str(BIN / "dvc"), "repro", "-q", cwd=dvc_repo)
    assert (dvc_repo / "prepared" / "A-5" / "train.npy").is_file()
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())["stages"]["prepare"]
    version = data_version(dvc_repo / "prepared")
    assert version.source == "dvc" and version.tracked_by == "dvc.lock:prepare"
    assert version.digest == lock["outs"][0]["md5"]
    summary = (dvc_repo / "prepared" / "summary.json").read_text()
    assert '"A-5"' in summary and "refused" not in summary


def test_repo_pipeline_stages_list_every_settings_section_they_read() -> None:
    """``dvc repro`` reruns a stage only when a listed section changes; DVC refuses one params.yaml lacks."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    reads = {
        "prepare": {"data", "windows", "normalize", "quality", "impute", "features"},  # prepare_channel
        "train": {"windows", "train", "lstm", "transformer"},  # ModelSpec.from_settings, train
        "evaluate": {"threshold"},  # detect
    }
    for name, sections in reads.items():
        assert set(stages[name]["params"]) == sections, name
        assert sections <= set(params), name


@pytest.mark.slow
def test_repo_pipeline_reproduces_on_one_sample_channel(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo)
    (repo / "pdm_ray" / "cli").mkdir(parents=True)
    shutil.copy(ROOT / "pdm_ray" / "cli" / "data_cmd.py", repo / "pdm_ray" / "cli")
    for package in ("data", "models", "detection"):
        shutil.copytree(
            ROOT / "pdm_ray" / package, repo / "pdm_ray" / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    copy_channel(repo / "data" / "sample")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"]["channels"] = ["A-5"]
    params["train"]["epochs"] = 1
    params["lstm"]["layers"] = [8]
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run("git", "init", "-q", cwd=repo)
    run(str(BIN / "dvc"), "init", "-q", cwd=repo)
    run(str(BIN / "dvc"), "repro", "-q", cwd=repo)
    assert (repo / "out" / "prepare" / "A-5" / "normalizer.json").is_file()
    assert (repo / "out" / "models" / "A-5" / "params.msgpack").is_file()
    metrics = yaml.safe_load((repo / "out" / "evaluate" / "metrics.json").read_text())
    assert set(metrics) >= {"precision", "recall", "f1", "channels"} and list(metrics["channels"]) == ["A-5"]
    assert metrics["tp"] + metrics["fn"] == 1  # A-5 has one labelled sequence
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert list(lock) == ["prepare", "train", "evaluate"]
    assert data_version(repo / "data" / "sample").source == "dvc"  # recorded as the prepare stage's dependency
