"""The CLI: real subprocesses; errors are one line and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdm_ray.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_config_show_prints_resolved_config() -> None:
    out = cli("config", "show")
    assert out.returncode == 0, out.stderr
    assert "l_s: 250" in out.stdout and "tracking_uri: sqlite:///" in out.stdout


def test_config_show_masks_the_auth_token() -> None:
    env = {**os.environ, "PDM_SERVE__AUTH_TOKEN": "s3cret-Xk9"}
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.cli", "config", "show"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout and "auth_token: '***'" in out.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bogus: 1\n", "bogus: unknown key"),
        ("train:\n  epochs: x\n", "train.epochs: Input should be a valid integer"),
        ("windows:\n  l_s: -1\n", "windows.l_s: Input should be greater than 0"),
    ],
)
def test_invalid_config_is_one_line_exit_2(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    out = cli("config", "show", "--config", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in out.stderr


def test_missing_config_file_is_one_line_exit_2(tmp_path: Path) -> None:
    out = cli("config", "show", "--config", str(tmp_path / "none.yaml"))
    assert out.returncode == 2
    assert out.stderr.strip() == f"pdm-ray config: error: {tmp_path / 'none.yaml'}: config file not found"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PDM_TRAIN__EPOCHS": "["}, "environment variable PDM_TRAIN__EPOCHS: not valid YAML: "),
        ({"PDM_SERVE__AUTH_TOKEN": ""}, "environment variable PDM_SERVE__AUTH_TOKEN: serve.auth_token: "),
        ({"PDM_HOME": ""}, "environment variable PDM_HOME: home: Value error, must not be empty"),
    ],
)
def test_bad_environment_value_is_one_line_exit_2(env: dict[str, str], expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.cli", "config", "show"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"pdm-ray config: error: {expected}")


def test_config_file_that_is_not_utf8_is_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"train:\n  epochs: 3\n\xff\n")
    out = cli("config", "show", "--config", str(path))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"pdm-ray config: error: {path}: cannot read config file: 'utf-8' codec can't decode")


def test_data_inspect_lists_sample_channels() -> None:
    out = cli("data", "inspect", "data/sample")
    assert out.returncode == 0, out.stderr
    assert "T-1" in out.stdout and "point:1, contextual:1" in out.stdout.replace(
        "contextual:1, point:1", "point:1, contextual:1"
    )
    assert "4 channels, 5 labelled anomaly sequences" in out.stdout


def test_data_inspect_missing_dir_is_one_line_exit_2(tmp_path: Path) -> None:
    out = cli("data", "inspect", str(tmp_path / "missing"))
    assert out.returncode == 2
    assert out.stderr.strip() == f"pdm-ray data: error: {tmp_path / 'missing'}: data directory not found"


def test_unknown_subcommand_is_usage_error() -> None:
    out = cli("nonsense")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1


def test_every_subcommand_has_help() -> None:
    from pdm_ray.cli import build_parser

    parser = build_parser()
    names = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "config", "data"} <= set(names)
    for name in names:
        out = cli(name, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, name


def test_the_cli_starts_without_the_model_tracking_or_ray_stacks() -> None:
    """``pdm-ray --help`` and the config and data commands must not wait for JAX, MLflow or Ray.

    Importing them all took 17 s on the 2-core box; each subcommand imports what it needs.
    """
    heavy = ("jax", "flax", "mlflow", "ray", "scipy.stats", "pandas")
    code = f"import sys, pdm_ray.cli; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--port", "70000"), "--port: Input should be less than 65536 (got 70000)"),
        (("tune", "--config", "/nonexistent/sweep.yaml"), "/nonexistent/sweep.yaml: config file not found"),
        (("models", "list", "--channel", "bad!id"), "invalid sensor id 'bad!id'"),
    ],
)
def test_bad_options_fail_before_ray_or_the_store_start(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    home = tmp_path / "home"
    out = subprocess.run(
        [sys.executable, "-m", "pdm_ray.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PDM_HOME": str(home)},
    )
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert message in line
    assert not (home / "mlflow.db").exists()  # nothing was created for a command that cannot run
